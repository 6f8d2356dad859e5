"""Report figures: accuracy and divergence steps against a swept key, a heat map of two keys, training curves."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DIVERGED_STYLE = {"marker": "x", "color": "red", "linestyle": "none", "markersize": 8}
# A point whose cell rests on the search (cdyn_bench.search: lr at a grid edge or still learning at the cap).
FLAGGED_STYLE = {"marker": "o", "markerfacecolor": "none", "markeredgecolor": "black", "linestyle": "none",
                 "markersize": 13}
# Marker and dash of a line, by its place past each run of the ten cycle colours.
LINE_STYLES = ["o-", "s--", "^:", "D-."]


def label(row: pd.Series | dict, keys: list[str]) -> str:
    """'gated' or 'gated, model.d_model=32': the first key's value, then key=value for the others."""
    parts = [str(row[k]) if i == 0 else f"{k}={row[k]}" for i, k in enumerate(keys)]
    return ", ".join(parts) or "mean over seeds"


def fitted(title: str, fig: Figure) -> str:
    """The title wrapped to lines that fit the figure's width (about 10 characters an inch at medium size)."""
    return textwrap.fill(title, width=max(40, int(fig.get_figwidth() * 10)))


def axis_order(values: pd.Series) -> list:
    """The x values in drawing order: a categorical's own order (its values present), else sorted as text."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [v for v in values.cat.categories if v in set(values)]
    return sorted(values.unique(), key=str)


def numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def x_positions(values: pd.Series, order: list) -> np.ndarray:
    """Numeric x as is; categorical x as its index in `order`."""
    return values.to_numpy(dtype=float) if numeric(values) else values.map(order.index).to_numpy(dtype=float)


def set_x_axis(ax, values: pd.Series, order: list, key: str) -> None:
    """Categorical ticks at their names; numeric ticks at the swept values, log scale when they span 3x."""
    ax.set_xlabel(key)
    if not numeric(values):
        names = [str(v) for v in order]
        long = max(map(len, names)) * len(names) > 50  # slanted, so that long names (conditions) do not overlap
        ax.set_xticks(range(len(order)), names, rotation=25 if long else 0, ha="right" if long else "center")
        ax.set_xlim(-0.5, len(order) - 0.5)
        return
    if values.min() > 0 and values.max() >= 3 * values.min():
        ax.set_xscale("log")
    if len(order) <= 8:
        ax.set_xticks([float(v) for v in order], [f"{v:g}" for v in order])
        ax.minorticks_off()


def accuracy_figure(records: pd.DataFrame, summary: pd.DataFrame, x: str, series: list[str],
                    title: str, metric: str = "test_accuracy", ylabel: str = "test accuracy") -> Figure:
    """Mean test accuracy (or another per-run `metric` in [0, 1] with <metric>_mean/_std in `summary`) over
    seeds (a diverged seed counts 0) against `x`, one line per series, a ±std band, each completed seed as
    a dot, and, for accuracy, diverged seeds as red crosses on the x axis (a failed run scores 0; other
    metrics of a diverged run are not 0, so no cross is drawn)."""
    fig, ax = plt.subplots(figsize=(8.4, 4.2), layout="constrained")
    order = axis_order(records[x])
    for i, (name, rows) in enumerate(summary.groupby(series, sort=True) if series else [((), summary)]):
        color, rows = f"C{i % 10}", rows.sort_values(x)
        xs, mean = x_positions(rows[x], order), rows[f"{metric}_mean"]
        std = rows[f"{metric}_std"].fillna(0)
        # Past the ten colours of the cycle, a line repeats a colour with the next marker and dash style.
        ax.plot(xs, mean, LINE_STYLES[i // 10 % len(LINE_STYLES)], color=color, label=label(rows.iloc[0], series))
        ax.fill_between(xs, (mean - std).clip(0, 1), (mean + std).clip(0, 1), color=color, alpha=0.2, linewidth=0)
        runs = records if not series else records.merge(rows[series].drop_duplicates(), on=series)
        done = runs[runs["status"] == "completed"]
        ax.plot(x_positions(done[x], order), done[metric], ".", color=color, alpha=0.6)
        bad = runs[runs["status"] == "diverged"] if metric == "test_accuracy" else runs.iloc[:0]
        ax.plot(x_positions(bad[x], order), np.zeros(len(bad)), **DIVERGED_STYLE)
        if "flagged" in rows:
            ax.plot(xs[rows["flagged"].to_numpy(dtype=bool)], mean[rows["flagged"].to_numpy(dtype=bool)], **FLAGGED_STYLE)
    if "flagged" in summary and summary["flagged"].any():
        ax.plot([], [], label="search limit (lr edge / at cap)", **FLAGGED_STYLE)
    if metric == "test_accuracy" and (records["status"] == "diverged").any():
        ax.plot([], [], label="diverged run", **DIVERGED_STYLE)
    set_x_axis(ax, records[x], order, x)
    ax.set_ylabel(f"{ylabel} (mean ± std over seeds)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(fitted(title, fig), fontsize="medium")
    ax.grid(alpha=0.3)
    # Beside the axes, not on them: the bands and seed dots fill the whole range.
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig


def on_validation(summary: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of `keys`, the summary row with the best validation accuracy (over any other keys)."""
    ranked = summary.sort_values("val_accuracy_mean", ascending=False, kind="stable", na_position="last")
    return ranked.drop_duplicates(keys).set_index(keys)


def heatmap_figure(summary: pd.DataFrame, rows: str, cols: str, title: str) -> Figure:
    """Mean test accuracy for each (rows, cols) pair, of the setting of the other keys best on validation;
    'div' where all its seeds diverged, '*' where the cell rests on the search (a `flagged` column)."""
    best = on_validation(summary, [rows, cols])
    acc = best["test_accuracy_mean"].unstack(cols)
    dead = (best["n_diverged"] == best["n"]).unstack(cols).fillna(False).astype(bool)
    flagged = (best["flagged"] if "flagged" in best else best["n"] < 0).unstack(cols).fillna(False).astype(bool)
    fig, ax = plt.subplots(figsize=(1.2 * acc.shape[1] + 2.5, 0.6 * acc.shape[0] + 1.8), layout="constrained")
    image = ax.imshow(acc.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(acc.to_numpy(dtype=float)):
        text = "div" if dead.iat[i, j] else ("" if np.isnan(value) else f"{value:.2f}")
        text += "*" if flagged.iat[i, j] else ""
        dark = dead.iat[i, j] or not value >= 0.6
        ax.text(j, i, text, ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(acc.shape[1]), [str(c) for c in acc.columns])
    ax.set_yticks(range(acc.shape[0]), [str(r) for r in acc.index])
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    ax.set_title(fitted(title, fig), fontsize="medium")
    note = " (*: search limit)" if flagged.to_numpy().any() else ""
    fig.colorbar(image, ax=ax, label=f"test accuracy (mean over seeds){note}")
    return fig


def curves_figure(records: pd.DataFrame, series: list[str], title: str) -> Figure:
    """Training loss and validation accuracy against step from each run's history, one colour per series,
    one thin line per seed (a dot for a run evaluated once); a red cross where a run diverged."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    groups = records.groupby(series, sort=True) if series else [((), records)]
    for i, (_, runs) in enumerate(groups):
        for j, run in enumerate(runs.itertuples(index=False)):
            history = pd.DataFrame(run.history)
            if history.empty:
                continue
            name = label(runs.iloc[0], series) if j == 0 else None
            style = {"color": f"C{i % 10}", "lw": 1, "alpha": 0.8}
            if len(history) == 1:  # a run with one evaluation is a point, not an invisible line
                style["marker"] = "o"
            loss_ax.plot(history["step"], history["train_loss"], label=name, **style)
            acc_ax.plot(history["step"], history["val_accuracy"], **style)
            if run.status == "diverged":
                loss_ax.plot(history["step"].iloc[-1:], history["train_loss"].iloc[-1:], **DIVERGED_STYLE)
    losses = records["history"].map(lambda h: [r["train_loss"] for r in h]).explode().astype(float)
    losses = losses[np.isfinite(losses) & (losses > 0)]
    log = len(losses) > 0 and losses.max() > 10 * losses.min()
    loss_ax.set(xlabel="step", ylabel="train loss", yscale="log" if log else "linear")
    fig.suptitle(fitted(title, fig), fontsize="medium")
    acc_ax.set(xlabel="step", ylabel="validation accuracy", ylim=(-0.05, 1.05))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    loss_ax.legend(fontsize="small")
    return fig


def divergence_figure(records: pd.DataFrame, x: str, series: list[str], title: str) -> Figure:
    """The step at which each run diverged against `x`, one colour per series (log steps); runs that did
    not diverge as hollow circles at the step they stopped, so 'never diverged' reads at a glance."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    order = axis_order(records[x])
    groups = records.groupby(series, sort=True) if series else [((), records)]
    width = 0.25 * (min(np.diff(sorted(map(float, order)))) if numeric(records[x]) and len(order) > 1 else 1.0)
    for i, (_, runs) in enumerate(groups):
        color = f"C{i % 10}"
        shift = width * (i - (len(groups) - 1) / 2) / max(len(groups), 1)
        bad, done = runs[runs["status"] == "diverged"], runs[runs["status"] == "completed"]
        ax.plot(x_positions(bad[x], order) + shift, bad["diverged_at"], "x", color=color, markersize=8,
                label=label(runs.iloc[0], series))
        ax.plot(x_positions(done[x], order) + shift, done["steps"], "o", mfc="none", color=color, alpha=0.6)
    ax.plot([], [], "o", mfc="none", color="grey", label="did not diverge (at its last step)")
    set_x_axis(ax, records[x], order, x)
    ax.set_yscale("log")
    ax.set_ylabel("step of divergence (x) or last step (o)")
    ax.set_title(fitted(title, fig), fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
