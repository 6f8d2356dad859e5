"""The search rule: flag cells whose verdict may rest on where the search stopped, and extend them.

A cell is a config up to seed, learning rate and step budget (`SEARCH_KEYS`), pooled over every
folder its records come from. Each learning rate of a cell is judged on its records at the longest
step cap tried for it; the best is the one with the highest mean validation score over seeds: the
validation accuracy (a diverged seed counts 0), or for a character-level task (tasks.CHARACTER_LEVEL)
minus its bits per character (a diverged seed counts -inf), with lr_margin and rising in bits; such a
cell never reaches the target, so it is always judged. A cell whose best mean validation accuracy is below `rule.target` is flagged

- `lr_edge` when the best lr is the smallest or largest tried and beats its inner neighbour by more
  than `rule.lr_margin` (or is the only lr tried): a better lr may lie outside the grid;
- `at_cap` when a seed at the best lr ran to its cap without diverging or reaching the early-stop target
  and its validation accuracy rose by more than `rule.rising` over its last evaluation interval: it was
  still learning.

`extensions` turns the flags into the next points to train (cdyn_bench.search_runs trains them), by one rule for every cell: an `lr_edge`
cell gets the next lr past its edge (x or / `rule.lr_factor`, within [lr_min, lr_max]) at the best lr's
cap; an `at_cap` cell gets its best lr again at `rule.cap_factor` times the cap (up to
`rule.max_steps_ceiling`), every seed of the cell, with the plateau stop `rule.patience`. A cell whose
next point would pass a bound stays flagged and says which bound (`limit`).
"""

from __future__ import annotations

import functools
import json
import math
import operator
from pathlib import Path
from typing import TYPE_CHECKING

from cdyn_bench.search_rule import SearchRule
from cdyn_bench.tasks import CHARACTER_LEVEL

if TYPE_CHECKING:  # pandas is imported by the functions that build frames: the config schema stays light
    import pandas as pd

LR, CAP, PATIENCE = "train.lr", "train.max_steps", "train.patience"
# Keys a search changes; a cell is a config up to these and the seed.
SEARCH_KEYS = [LR, CAP, PATIENCE, "train.plateau_delta"]
FLAG_COLUMNS = ["lr_edge", "at_cap", "limit", "lr_grid", "cap", "steps_to_target_median", "n_reached"]


# The 1-3-10 ladder of the experiments' lr grids (1e-3, 3e-3, ...), which a factor of 3 steps along.
LADDER = sorted(m * 10.0 ** e for e in range(-8, 2) for m in (1, 3))


def next_lr(lr: float, up: bool, rule: SearchRule) -> float | None:
    """The next learning rate past `lr`, None past [lr_min, lr_max]. With lr_factor 3 (about sqrt(10)) the
    next rung of LADDER at least 1.5x away (3e-3 -> 1e-2 -> 3e-2); other factors multiply, to 2 digits."""
    if abs(math.log10(rule.lr_factor) - 0.5) < 0.03:
        rungs = [v for v in LADDER if v > 1.5 * lr] if up else [v for v in LADDER if v < lr / 1.5]
        value = float(f"{(rungs[0] if up else rungs[-1]):.1g}")
    else:
        value = float(f"{lr * rule.lr_factor if up else lr / rule.lr_factor:.2g}")
    tolerance = 1e-9 * rule.lr_max
    return value if rule.lr_min - tolerance <= value <= rule.lr_max + tolerance else None


def cell_columns(df: pd.DataFrame, config: list[str], not_cell: list[str]) -> list[str]:
    """The config keys that name a cell: every config key but SEARCH_KEYS and how-to-run keys."""
    return [c for c in config if c not in SEARCH_KEYS and c not in not_cell]


def history_of(row: pd.Series) -> list[dict]:
    history = row["history"]
    return json.loads(history) if isinstance(history, str) else list(history or [])


def character_level(row: pd.Series | pd.DataFrame):
    """Whether a record (or each of a frame's) is of a character-level task, judged on bits per character."""
    task = row.get("task.name")
    return task.isin(CHARACTER_LEVEL) if hasattr(task, "isin") else task in CHARACTER_LEVEL


def history_score(entry: dict, row: pd.Series) -> float | None:
    """One evaluation's validation score: accuracy, or minus bits per character (from val_loss, nats) for a
    character-level task, so that higher is better for every task."""
    if not character_level(row):
        return entry.get("val_accuracy")
    loss = entry.get("val_loss")
    return None if loss is None else -loss / math.log(2)


def run_scores(runs: pd.DataFrame) -> pd.Series:
    """Each record's validation score, higher better: accuracy (a diverged run 0), or minus bits per character
    for a character-level task (a diverged run -inf)."""
    completed = runs["status"] == "completed"
    accuracy = runs["val_accuracy"].where(completed, 0.0).fillna(0.0)
    if "task.name" not in runs or not character_level(runs).any():
        return accuracy
    bits = -runs.get("val_bits_per_char", runs["val_accuracy"] * math.nan)
    return accuracy.where(~character_level(runs), bits.where(completed, -math.inf).fillna(-math.inf))


def still_learning(row: pd.Series, rule: SearchRule) -> bool:
    """A seed that ran to its cap without diverging or early-stopping, its validation accuracy still rising."""
    if row["status"] != "completed" or not row.get(CAP, math.nan) <= row["steps"]:
        return False
    vals = [history_score(h, row) for h in history_of(row)]
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    stopped_early = vals[-1] >= row.get("train.target_accuracy", math.inf) if vals else False
    return len(vals) >= 2 and not stopped_early and vals[-1] - vals[-2] > rule.rising


def first_step(row: pd.Series, target: float) -> float:
    """The first evaluation step whose validation score reaches `target`, NaN when none does."""
    if row["status"] != "completed":
        return math.nan
    for h in history_of(row):
        if (history_score(h, row) or -math.inf) >= target:
            return float(h["step"])
    return math.nan


def longest_cap(df: pd.DataFrame, cell: list[str]) -> pd.DataFrame:
    """Per cell and lr, only the records at the longest step cap tried for that lr (all where no cap is known)."""
    if CAP not in df or LR not in df:
        return df
    longest = df.groupby(cell + [LR], dropna=False)[CAP].transform("max")
    return df[(df[CAP] == longest) | longest.isna()]


def lr_means(runs: pd.DataFrame, cell: list[str]) -> pd.DataFrame:
    """Per cell and lr: the mean validation score over seeds (`run_scores`: a diverged seed fails) and the cap it
    was judged at."""
    val = run_scores(runs)
    runs = runs.assign(**{CAP: runs.get(CAP, math.nan), LR: runs.get(LR, math.nan)})
    return (runs.assign(val_scored=val).groupby(cell + [LR], dropna=False)
            .agg(val=("val_scored", "mean"), cap=(CAP, "max")).reset_index())


def judge_cell(lrs: pd.DataFrame, runs: pd.DataFrame, rule: SearchRule) -> dict:
    """The flags of one cell from its per-lr means (`lr_means`) and its runs at the longest caps."""
    lrs = lrs.sort_values(LR)
    best = lrs.loc[lrs["val"].idxmax()]
    grid, at = list(lrs[LR]), grid_index(lrs, best)
    best_runs = runs[same(runs.get(LR, runs["seed"] * math.nan), best[LR])]
    reached = best_runs.apply(first_step, axis=1, target=rule.target).astype(float)
    out = {"best_lr": best[LR], "best_val": best["val"], "cap": best["cap"], "lr_grid": "/".join(f"{v:g}" for v in grid),
           "steps_to_target_median": float(reached.median()) if reached.notna().any() else math.nan,
           "n_reached": int(reached.notna().sum()), "lr_edge": False, "at_cap": False, "edge_side": None}
    # A cell every run of which diverged has no better lr to point at (every lr scores -inf): not an edge.
    if best["val"] >= rule.target or best["val"] == -math.inf:
        return out
    if len(grid) == 1 or at in (0, len(grid) - 1):
        neighbour = lrs.iloc[1 if at == 0 else len(grid) - 2]["val"] if len(grid) > 1 else -math.inf
        if best["val"] - neighbour > rule.lr_margin:
            out["lr_edge"], out["edge_side"] = True, "up" if at == len(grid) - 1 and len(grid) > 1 else "down"
            if len(grid) == 1:
                out["edge_side"] = "both"
    out["at_cap"] = bool(best_runs.apply(still_learning, axis=1, rule=rule).any()) if len(best_runs) else False
    return out


def grid_index(lrs: pd.DataFrame, best: pd.Series) -> int:
    return list(lrs[LR]).index(best[LR])


def flags(df: pd.DataFrame, cell: list[str], rule: SearchRule) -> pd.DataFrame:
    """One row per cell: its keys, best lr and validation accuracy, lr_edge, at_cap, the lr grid, the cap at
    the best lr and the median step (over its seeds) at which validation first reached rule.target."""
    import pandas as pd

    runs = longest_cap(df, cell)
    means = lr_means(runs, cell)
    rows = []
    for key, lrs in means.groupby(cell, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        mask = functools.reduce(operator.and_, [same(runs[c], v) for c, v in zip(cell, key)], runs[LR] == runs[LR])
        rows.append({**dict(zip(cell, key)), **judge_cell(lrs, runs[mask], rule)})
    return pd.DataFrame(rows)


def cell_ids(df: pd.DataFrame, cell: list[str]) -> pd.Series:
    """One text per row naming its cell (the `cell` keys' values, NaN as 'nan'), for matching across frames."""
    return df[cell].apply(lambda column: column.map(str)).agg("|".join, axis=1)


def same(column: pd.Series, value) -> pd.Series:
    """Elementwise equality that treats NaN as equal to NaN (a key absent from older records)."""
    if isinstance(value, float) and math.isnan(value):
        return column.isna()
    return column == value


def limit(row: dict, rule: SearchRule) -> str:
    """The bound a flagged cell's next point would pass ('' when the search can go on)."""
    hit = []
    if row["lr_edge"]:
        sides = {"up": [True], "down": [False], "both": [True, False]}[row["edge_side"]]
        if all(next_lr(row["best_lr"], up, rule) is None for up in sides):
            hit.append(f"lr bound [{rule.lr_min:g}, {rule.lr_max:g}]")
    if row["at_cap"] and not row["cap"] * rule.cap_factor <= rule.max_steps_ceiling:
        hit.append(f"step ceiling {rule.max_steps_ceiling}")
    return "; ".join(hit)


def next_points(row: dict, rule: SearchRule) -> list[dict[str, float]]:
    """The (lr, cap) points the rule adds for one flagged cell: past the lr edge, and a longer cap."""
    points = []
    if row["lr_edge"]:
        sides = {"up": [True], "down": [False], "both": [True, False]}[row["edge_side"]]
        points += [{LR: lr, CAP: row["cap"]} for up in sides if (lr := next_lr(row["best_lr"], up, rule)) is not None]
    if row["at_cap"] and row["cap"] * rule.cap_factor <= rule.max_steps_ceiling:
        points.append({LR: row["best_lr"], CAP: int(row["cap"]) * rule.cap_factor})
    return points


def incomplete_points(df: pd.DataFrame, cell: list[str], rule: SearchRule) -> list[tuple[str, dict[str, float]]]:
    """(a record path, the train overrides) for every seed a point the search added (its plateau stop is the
    rule's) lacks against the seeds of its cell, copied from that seed's own record: an extension stopped
    half-way is finished before the cell is judged again, so no verdict rests on a part of a point's seeds."""
    if PATIENCE not in df or df.empty:
        return []
    out = []
    for _, part in df.groupby(cell, dropna=False, sort=True):
        seeds = sorted(part["seed"].unique())
        added = part[part[PATIENCE] == rule.patience]
        for (lr, cap), point in added.groupby([LR, CAP], sort=True):
            for seed in sorted(set(seeds) - set(point["seed"])):
                template = part[part["seed"] == seed].sort_values(CAP, kind="stable")["path"].iloc[-1]
                out.append((template, {LR: lr, CAP: cap, PATIENCE: rule.patience,
                                       "train.plateau_delta": rule.plateau_delta}))
    return out


def extensions(df: pd.DataFrame, cell: list[str], rule: SearchRule) -> list[tuple[str, dict[str, float]]]:
    """(a record path, the train overrides) per run the rule adds: the missing seeds of points it added
    before (`incomplete_points`), else each new point for every seed of the cell, copied from that seed's
    record at the best lr."""
    missing = incomplete_points(df, cell, rule)
    if missing:
        return missing
    table = flags(df, cell, rule)
    runs = longest_cap(df, cell)
    out = []
    for row in table.to_dict("records"):
        points = next_points(row, rule)
        if not points:
            continue
        mask = functools.reduce(operator.and_, [same(runs[c], row[c]) for c in cell], runs[LR] == row["best_lr"])
        for path in runs[mask].sort_values("seed")["path"]:
            out += [(path, {**point, PATIENCE: rule.patience, "train.plateau_delta": rule.plateau_delta})
                    for point in points]
    return out


def stop_step(history: list[dict], patience: int, delta: float) -> float:
    """The step at which the plateau stop (cdyn_bench.train.plateaued) would end a recorded run, NaN: never."""
    from cdyn_bench.train import plateaued

    probe = type("Stop", (), {"patience": patience, "plateau_delta": delta})
    for i in range(1, len(history) + 1):
        if plateaued(history[:i], probe):
            return float(history[i - 1]["step"])
    return math.nan


def status(df: pd.DataFrame, cell: list[str], rule: SearchRule, folder_of: str = "sweep_name") -> pd.DataFrame:
    """One row per cell below rule.target pooled over folders: its flags, the bound hit, the folders holding it."""
    table = flags(df, cell, rule)
    table = table[table["best_val"] < rule.target].copy()
    table["limit"] = [limit(row, rule) for row in table.to_dict("records")]
    if folder_of in df:
        keys = cell_ids(df, cell)
        folders = df.groupby(keys)[folder_of].agg(lambda s: ",".join(sorted(set(map(str, s)))))
        table["folders"] = cell_ids(table, cell).map(folders)
    return table.reset_index(drop=True)


def experiment_records(results: Path) -> list[Path]:
    """Every records folder of the findings and principles under `results`, in a fixed order."""
    return sorted(results.glob("findings/*/records")) + sorted(results.glob("principles/*/records"))
