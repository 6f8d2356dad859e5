"""Principle 1's report: inference memory and time per generated token against context length.

cdyn_bench.measures.inference_cost measures each preset from its own streaming step and writes the measurements
(finite_state.csv) and how they were taken (finite_state.json); write_finite_state turns them into the
table (finite_state.md) and the figure (finite_state.png), so `cdyn-report DIR --finite-state` remakes both
from the committed measurements without measuring again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

MEASUREMENTS, SETTINGS = "finite_state.csv", "finite_state.json"


def read_measurements(directory: Path) -> tuple[pd.DataFrame, dict]:
    csv, settings = Path(directory) / MEASUREMENTS, Path(directory) / SETTINGS
    if not csv.exists() or not settings.exists():
        raise ValueError(f"{directory}: no {MEASUREMENTS} and {SETTINGS} (written by cdyn_bench.measures.inference_cost)")
    return pd.read_csv(csv), json.loads(settings.read_text())


def markdown(df: pd.DataFrame, settings: dict) -> str:
    wide = df.pivot_table(index=["preset", "finite_state"], columns="context", values=["cache_floats", "ms_per_token"],
                          sort=False)
    lines = [
        "# Finite state or KV cache: inference memory and time per token against context length",
        "",
        f"Produced by `cdyn-reproduce finite_state` ({settings['threads']} thread(s), {settings['machine']}, "
        f"{settings['cores']} cores; {settings['steps']} generated tokens per length, fastest shown). Memory: floats "
        "the streaming caches hold, summed over layers. Streamed logits against one forward pass at "
        f"L = {df['context'].min()}: largest |difference| "
        f"{df['max_abs_diff_vs_forward'].max():.2e} over all presets (float32).",
        "",
        "## Floats held per sequence",
        "",
        wide["cache_floats"].astype(int).reset_index().to_markdown(index=False, intfmt=","),
        "",
        "## ms per generated token",
        "",
        wide["ms_per_token"].round(3).reset_index().to_markdown(index=False),
        "",
    ]
    return "\n".join(lines)


def figure(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (mem, speed) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for i, (preset, rows) in enumerate(df.groupby("preset", sort=False)):
        style = {"color": plt.cm.tab20(i % 20), "marker": "o", "linestyle": "-" if rows["finite_state"].iloc[0] else "--"}
        mem.plot(rows["context"], rows["cache_floats"], label=preset, **style)
        speed.plot(rows["context"], rows["ms_per_token"], **style)
    for ax, label in ((mem, "floats held per sequence"), (speed, "ms per generated token (fastest)")):
        ax.set(xscale="log", yscale="log", xlabel="context length L", ylabel=label)
        ax.grid(alpha=0.3)
    mem.legend(fontsize="small", title="solid: finite state, dashed: KV cache")
    fig.suptitle("Inference from each preset's own streaming step (MQAR-default sizes, batch 1)", fontsize="medium")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_finite_state(dirs: list[Path], out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """finite_state.md and finite_state.png under `out` from the measurements in dirs[0]."""
    df, settings = read_measurements(dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    (out / "finite_state.md").write_text(markdown(df, settings))
    figure(df, out / "finite_state.png")
    table = df.pivot_table(index="preset", columns="context", values="cache_floats", sort=False).astype(int).reset_index()
    return table, [out / "finite_state.md", out / "finite_state.png"]
