"""Eigenvalue spectra of trained mixers (Task-Level Insights from Eigenvalues, arXiv 2510.09379).

Every mixer is read as a dynamical system on its normalised coefficients: from one position to the
next, alpha_ij = phi(q_i^T A_i...A_{j+1} b_j) / eta_i evolves by A_i and by eta_{i-1} / eta_i. Its
per-step eigenvalue magnitudes are |lambda(A_i)| * eta_{i-1} / eta_i: for attention (A = I) one real
eigenvalue eta_{i-1} / eta_i per position; for gated models the gate (scalar) or its entries
(diagonal) times the normaliser ratio, which is 1 for eta = 1; for Householder A, 1 and 1 - beta_t
(times the gate). Everything comes from the mixer's own introspection (cdyn_bench.mixer.introspect)
in float64, eta in log space (log-sum-exp of the scores when phi = exp) with the model's own scaling
of the scores, masked positions excluded (the companion code counts them as exp(0) = 1 and drops the
1/sqrt(d) scale; not copied).

The spectrum of a run is taken on the first test sequences of its task, at initialisation and after
training, from the weights a run with train.save_weights wrote (record.WEIGHTS).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cdyn_bench.compose import from_record
from cdyn_bench.data import TaskData, to_tensors
from cdyn_bench.mixer.introspect import extremes_batch, inspect_model
from cdyn_bench.model import LanguageModel
from cdyn_bench.record import RESULT, WEIGHTS, read_result

EDGES = [0.0, 0.1, 0.5, 0.9, 1.0, 10.0, 100.0, math.inf]
BINS = ["[0, 0.1]", "(0.1, 0.5]", "(0.5, 0.9]", "(0.9, 1]", "(1, 10]", "(10, 100]", "> 100"]
SEQUENCES = 64


def magnitudes(seen: dict) -> torch.Tensor:
    """(B, T-1, H, n) per-step eigenvalue magnitudes |lambda(A_i)| eta_{i-1} / eta_i for positions i >= 1."""
    ratio = torch.exp(seen["log_eta"][..., :-1] - seen["log_eta"][..., 1:])  # (B, H, T-1)
    return seen["eigenvalues"][:, 1:].abs() * ratio.transpose(1, 2)[..., None]


def bin_shares(values: torch.Tensor) -> np.ndarray:
    """(B, len(BINS)): per sequence, the share of `values` (B, ...) in each bin; the first bin is closed.
    Non-finite values (a row whose normaliser is zero, e.g. phi = relu with every score negative, has no
    ratio) are left out of the shares; a sequence with no finite value gets nan."""
    flat = values.flatten(1).numpy()
    finite = np.isfinite(flat)
    index = np.digitize(np.where(finite, flat, 0.0), EDGES[1:-1], right=True)  # 0 for [0, 0.1], ..., 6 for > 100
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([((index == k) & finite).sum(1) / finite.sum(1) for k in range(len(BINS))], axis=1)


def spectrum(model: LanguageModel, tokens: torch.Tensor) -> list[dict]:
    """Rows (layer, head, bin, share_mean, share_std over sequences) of the model on tokens (B, L)."""
    rows = []
    for layer, seen in enumerate(inspect_model(model.eval(), tokens)):
        lam = magnitudes(seen)
        for head in range(lam.shape[2]):
            shares = bin_shares(lam[:, :, head])
            for k, name in enumerate(BINS):
                rows.append({"layer": layer, "head": head, "bin": name, "share_mean": float(np.nanmean(shares[:, k])),
                             "share_std": float(np.nanstd(shares[:, k]))})
    return rows


def run_spectra(record_path: Path) -> list[dict]:
    """The spectrum rows of one run at init and trained, from the weights beside its record."""
    result = read_result(record_path)
    cfg = from_record(result.config)
    data = TaskData(cfg.task, cfg.seed, cfg.train.batch_size)
    torch.manual_seed(cfg.seed)
    model = LanguageModel(cfg.model, data.vocab_size, readout=cfg.task.readout)
    count = min(SEQUENCES, 8 * extremes_batch(model, data.seq_len))
    tokens = to_tensors(data.test.inputs[:count], device=torch.device("cpu"))[0]
    rows = []
    for when, name in WEIGHTS.items():
        model.load_state_dict(torch.load(Path(record_path).parent / name, weights_only=True))
        base = {"model.name": cfg.model.name, "task.name": cfg.task.name, "conv_size": cfg.model.mixer.conv_size,
                "seed": cfg.seed, "when": when, "run_dir": result.run_dir}
        rows += [{**base, **row} for row in spectrum(model, tokens)]
    return rows


def spectra_table(dirs: list[Path]) -> pd.DataFrame:
    """Every run under `dirs` that saved its weights: spectrum rows at init and trained."""
    paths = sorted({p for d in map(Path, dirs) for p in Path(d).rglob(RESULT) if (p.parent / WEIGHTS["trained"]).exists()})
    if not paths:
        raise ValueError(f"no run under {', '.join(map(str, dirs))} saved its weights (train.save_weights=true)")
    return pd.DataFrame([row for path in paths for row in run_spectra(path)])


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per model (and conv), task and when: each bin's share averaged over layers, heads and seeds."""
    keys = ["task.name", "model.name", "conv_size", "when"]
    out = df.groupby(keys + ["bin"], sort=False)["share_mean"].mean().unstack("bin")[BINS]
    return out.reset_index()


def figure(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary(df)
    tasks = list(dict.fromkeys(table["task.name"]))
    fig, axes = plt.subplots(len(tasks), 1, figsize=(10, 3.6 * len(tasks)), layout="constrained", squeeze=False)
    for ax, task in zip(axes[:, 0], tasks):
        rows = table[table["task.name"] == task]
        labels = [f"{m} (conv {c})\n{w}" for m, c, w in rows[["model.name", "conv_size", "when"]].itertuples(index=False)]
        bottom = np.zeros(len(rows))
        for k, name in enumerate(BINS):
            ax.bar(range(len(rows)), rows[name], bottom=bottom, color=plt.cm.viridis(k / (len(BINS) - 1)), label=name)
            bottom += rows[name].to_numpy()
        ax.set_xticks(range(len(rows)), labels, fontsize="x-small")
        ax.set(ylabel="share of eigenvalue magnitudes", title=task, ylim=(0, 1))
    axes[0, 0].legend(fontsize="x-small", ncol=len(BINS), loc="upper center", bbox_to_anchor=(0.5, 1.25))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_spectra(dirs: list[Path], out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """spectra.csv (per run, layer, head, bin: mean and std over sequences), spectra.md, spectra.png."""
    df = spectra_table(dirs)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "spectra.csv", index=False)
    table = summary(df)
    text = ["# Eigenvalue magnitudes of the per-step evolution, at initialisation and trained", "",
            "Share of |lambda(A_i)| eta_{i-1} / eta_i over positions, heads, layers and seeds in each bin "
            f"(cdyn_bench.spectra; the first {SEQUENCES} test sequences of each run's task). Per layer and head, "
            "with the spread over sequences: spectra.csv.", "",
            table.to_markdown(index=False, floatfmt=".3f"), ""]
    (out / "spectra.md").write_text("\n".join(text))
    figure(df, out / "spectra.png")
    return table, [out / "spectra.csv", out / "spectra.md", out / "spectra.png"]
