"""The figures of a report: accuracy (and noise mass, divergence steps) against a key, the heat map and the
training curves, with each point's search flag; drawn by cdyn_bench.figures from the table pipeline's data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cdyn_bench import figures, search
from cdyn_bench.table import (
    BASELINE, CONDITION, NAME_KEYS, NOT_CELL_KEYS, aggregate, config_columns, search_flags, select_best, varying,
)


def default_x(df: pd.DataFrame, swept: list[str], over: list[str]) -> str:
    """A numeric swept key if there is one, else a tuned hyperparameter, else a swept name."""
    others = [k for k in swept if k not in NAME_KEYS]
    others.sort(key=lambda k: not pd.api.types.is_numeric_dtype(df[k]))
    return (others + over + swept + ["model.name"])[0]


def describe(df: pd.DataFrame, where: list[str] = ()) -> str:
    """'noisy_icr, 3 seeds; phi=exp': the task(s), the seeds per setting and the records kept (the --where
    conditions, by their keys' last part), for figure titles."""
    seeds = df.groupby([c for c in config_columns(df) if c not in NOT_CELL_KEYS], dropna=False).size()
    low, high = seeds.min(), seeds.max()
    kept = ", ".join(f"{key.rsplit('.', 1)[-1]}={values}" for key, _, values in (c.partition("=") for c in where))
    return (f"{', '.join(map(str, df['task.name'].unique()))}, {low if low == high else f'{low}-{high}'} seeds"
            + (f"; {kept}" if kept else ""))


def with_condition(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """df with a CONDITION column: per run, the `keys` whose value differs from the baseline, that key's most
    common value over the records (a one-factor-at-a-time sweep's centre), as 'seq_len=128' (joined with
    ', ' when several differ), or 'baseline'. Categorical, the baseline first."""
    base = {k: df[k].mode(dropna=False).iloc[0] for k in keys}

    def name(row: pd.Series) -> str:
        changed = [f"{k.rsplit('.', 1)[-1]}={row[k]}" for k in keys if row[k] != base[k]]
        return ", ".join(changed) or BASELINE

    labels = df.apply(name, axis=1) if len(df) else pd.Series([], dtype=str)
    order = [BASELINE, *sorted(set(labels) - {BASELINE})]
    return df.assign(**{CONDITION: pd.Categorical(labels, categories=order)})


def figure_data(df: pd.DataFrame, cell: list[str], over: list[str],
                keys: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, per-group summary) for a figure over `keys`: all runs when a key is tuned, else the best; the
    summary's `flagged` says whether a cell of the group rests on the search (search_flags)."""
    runs = df if set(keys) & set(over) else select_best(df, cell, over)
    summary = aggregate(runs, list(dict.fromkeys(cell + over + keys)))
    flagged = search_flags(df, cell, over, search.SearchRule())
    flagged["flagged"] = flagged["lr_edge"] | flagged["at_cap"]
    shared = [k for k in cell if k in summary.columns]
    if not shared:
        return runs, summary.assign(flagged=bool(flagged["flagged"].any()))
    any_flag = flagged.groupby(shared, dropna=False)["flagged"].any().reset_index()
    return runs, summary.merge(any_flag, on=shared, how="left").assign(flagged=lambda d: d["flagged"].fillna(False).astype(bool))


# The names of the figures write_figures draws.
FIGURE_PATTERNS = ["accuracy_vs_*.png", "noise_mass_vs_*.png", "divergence_vs_*.png", "heatmap_*.png", "curves.png"]


def write_figures(df: pd.DataFrame, cell: list[str], over: list[str], out: Path, x: str | None = None,
                  heat: list[str] | None = None, series: list[str] | None = None, where: list[str] = ()) -> list[Path]:
    """accuracy_vs_<x>.png (one line per value of the `series` keys; default every other swept key),
    noise_mass_vs_<x>.png (noisy_icr runs), divergence_vs_<x>.png (when a run diverged),
    heatmap_<rows>_<cols>.png (when two keys vary) and curves.png under `out`."""
    swept = varying(df, cell)
    x = x or default_x(df, swept, over)
    if x == CONDITION:  # the swept keys that are not series lines become the conditions
        df = with_condition(df, [k for k in swept if k not in NAME_KEYS + (series or [])])
        swept = [k for k in swept if k in NAME_KEYS + (series or [])]
    runs, summary = figure_data(df, cell, over, [x, *(series or [])])
    series = series or [k for k in swept + (over if x in over else []) if k != x]
    title = describe(df, where)
    if over:
        title += f"; every {x}" if x in over else f"; best {', '.join(over)} per point on validation"
    made = {f"accuracy_vs_{x}.png": figures.accuracy_figure(runs, summary, x, series, title)}
    if summary["noise_mass_mean"].notna().any():
        made[f"noise_mass_vs_{x}.png"] = figures.accuracy_figure(
            runs, summary, x, series, title, metric="noise_mass", ylabel="noise share of |alpha|")
    if (runs["status"] == "diverged").any():
        made[f"divergence_vs_{x}.png"] = figures.divergence_figure(runs, x, series, title)
    # By default the first two swept keys; against conditions, the conditions by the first series key (a
    # condition stands for the keys it changes, which a heat map of other keys would mix).
    heat = heat or ([CONDITION, *swept] if x == CONDITION else swept + over)[:2]
    if len(heat) == 2:
        rest = [k for k in swept + over if k not in heat]
        title = describe(df, where) + (f"; {', '.join(rest)} best on validation" if rest else "")
        made[f"heatmap_{heat[0]}_{heat[1]}.png"] = figures.heatmap_figure(
            figure_data(df, cell, over, heat)[1], *heat, title)
    chosen = f"; best {', '.join(over)} per cell on validation" if over else ""
    made["curves.png"] = figures.curves_figure(select_best(df, cell, over), swept, describe(df, where) + chosen)
    for name, fig in made.items():
        fig.savefig(out / name, dpi=120)
        figures.plt.close(fig)
    # A figure an earlier report drew here and this one did not (another x, heat map or no divergence) is stale.
    for stale in {p for pattern in FIGURE_PATTERNS for p in out.glob(pattern)} - {out / name for name in made}:
        stale.unlink()
    return [out / name for name in made]
