"""The mechanism behind finding 2 (b_j = k_j / sqrt(n)): the variance of the scores q_i^T b_j at initialisation.

For each model (softmax, gated), head dim n and scale_b (on/off), cdyn-run's own model is built at
initialisation (5 seeds) and run on a batch of its task's validation inputs; every layer's mixer
gives q and b from its actual input (cdyn_bench.mixer.introspect), and the variance of q_i^T b_j over
every causal pair (j <= i), head and sequence is recorded. The claim to test: scaled, the variance
is O(1) in n; unscaled, it grows like n.

    cdyn-reproduce key_scaling --report-only   # writes results/findings/key_scaling/score_variance.{csv,md}
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from cdyn_bench.compose import compose
from cdyn_bench.data import TaskData, to_tensors
from cdyn_bench.mixer.introspect import float64_components, mixer_inputs
from cdyn_bench.model import LanguageModel

HEAD_DIMS = (16, 32, 64, 128, 256)


def score_variances(overrides: list[str], seeds: int, batch: int) -> list[float]:
    """Per layer, the variance of q_i^T b_j over causal pairs, heads and `batch` sequences, mean over seeds."""
    per_seed = []
    for seed in range(seeds):
        cfg = compose(*overrides, f"seed={seed}")
        torch.manual_seed(seed)
        data = TaskData(cfg.task, seed, cfg.train.batch_size)
        model = LanguageModel(cfg.model, data.vocab_size, readout=cfg.task.readout).eval()
        tokens = to_tensors(data.val.inputs[:batch], device=torch.device("cpu"))[0]
        layers = []
        for mixer, u in mixer_inputs(model, tokens):
            with torch.no_grad():
                q, b, _, _ = float64_components(mixer, u)
            scores = torch.einsum("bihn,bjhn->bhij", q, b)
            causal = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
            layers.append(float(scores[..., causal].var()))
        per_seed.append(layers)
    return [sum(col) / len(col) for col in zip(*per_seed)]


def write(folder: Path, seeds: int = 5, batch: int = 64) -> Path:
    """Measure every (task, model, n, scale_b) at init; writes <folder>/key_scaling/score_variance.{csv,md}."""
    out = folder / "key_scaling"
    torch.set_num_threads(1)
    rows = []
    for task in ("mqar", "noisy_icr"):
        for model in ("softmax", "gated"):
            for n in HEAD_DIMS:
                for scaled in (True, False):
                    overrides = [f"model={model}", f"task={task}", f"model.mixer.head_dim={n}",
                                 f"model.mixer.scale_b={scaled}"]
                    for layer, var in enumerate(score_variances(overrides, seeds, batch)):
                        rows.append({"task": task, "model": model, "layer": layer, "head_dim": n,
                                     "scale_b": scaled, "score_variance": var})
    df = pd.DataFrame(rows)
    base = df[df["head_dim"] == HEAD_DIMS[0]].set_index(["task", "model", "layer", "scale_b"])["score_variance"]
    df["relative_to_n16"] = [v / base[(t, m, l, s)] for t, m, l, s, v in
                             df[["task", "model", "layer", "scale_b", "score_variance"]].itertuples(index=False)]
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "score_variance.csv", index=False)
    wide = df[df["layer"] == 0].pivot_table(index=["task", "model", "scale_b"], columns="head_dim",
                                            values="score_variance").reset_index()
    wide.columns = [f"n={c}" if isinstance(c, int) else c for c in wide.columns]
    lines = [
        "# Score variance at initialisation: var(q_i^T b_j) against head dim n",
        "",
        f"Produced by `cdyn-reproduce key_scaling --report-only` ({seeds} seeds, {batch} validation sequences; "
        "cdyn-run's models at init, the first layer's mixer on its actual input; every layer in score_variance.csv).",
        "Scaled (scale_b = True, b_j = k_j / sqrt(n)) the claim is O(1) in n; unscaled it grows like n.",
        "",
        wide.to_markdown(index=False, floatfmt=".4g"),
        "",
    ]
    (out / "score_variance.md").write_text("\n".join(lines))
    return out / "score_variance.md"
