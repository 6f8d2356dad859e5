"""Run records to one table: load -> select_best (lr/wd on validation) -> aggregate (seeds) -> table, and the
checks and filters on the records (--where, key names, unfinished sweeps, mixed numerics versions)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

from cdyn_bench import search
from cdyn_bench.choices import EXTREMES
from cdyn_bench.config import OUTPUT_ONLY_KEYS
from cdyn_bench.record import RESULT, RunResult, read_result, stamp

METRICS = ["test_accuracy", "test_macro_accuracy", "val_accuracy", "train_loss"]
# The share of coefficient mass query rows put on noise tokens (noisy_icr runs; cdyn_bench.run.selectivity).
SELECTIVITY = ["noise_mass", "noise_mass_last_layer"]
# Knobs added after records were committed, with the value every older record ran with (each is inactive at
# it, so it is not in their hashes): filled in, so that a new record pools with the old ones of its cell.
LATER_KNOBS = {"model.mixer.beta_max": 1.0, "model.mixer.householders": 1}
# The accuracy at each test sequence's last scored position (records since it was recorded; completed runs).
LAST = ["test_last_accuracy"]
# Losses in bits per character (character-level tasks: text), the headline there; lower is better.
BITS = ["test_bits_per_char", "val_bits_per_char"]
RUN_COLUMNS = ["status", "seed", "steps", "diverged_at", "grad_norm_max", "wall_seconds", "train_seconds", "tokens_per_s",
               "n_params", "state_size", "config_hash", "run_dir", "numerics_version", "num_threads", "stopped", "path"]
# What computed each row (cdyn_bench.numerics_stamp: the numerics version and any form at another version).
STAMP = ["numerics"]
NAME_KEYS = ["task.name", "model.name"]
# Hyperparameters tuned per cell on validation accuracy rather than reported as cells of their own.
OVER = ["train.lr", "train.weight_decay"]
# Config keys that say where or how a run ran, not what it computed: never cell keys.
NOT_CELL_KEYS = ["seed", "device", *OUTPUT_ONLY_KEYS]
TIMING_COLUMNS = ["train_seconds_mean", "wall_seconds_mean", "tokens_per_s_mean"]
# *_mean and *_std count a diverged seed as a failed run (accuracy 0); *_completed_mean averages the
# seeds that finished without diverging (NaN when none did).
# What explains a failure, per cell: the median diverging step, and the largest gradient norm and
# EXTREMES of any seed (each run's largest over its evaluations and its divergence).
DIAGNOSTIC_COLUMNS = ["diverged_at_median", "grad_norm_max", *EXTREMES]
TABLE_COLUMNS = ["test_accuracy_mean", "test_accuracy_std", "test_accuracy_range", "test_accuracy_completed_mean", "test_macro_accuracy_mean",
                 "val_accuracy_mean", "n", "n_diverged", "steps_mean", "n_params", "state_size", *DIAGNOSTIC_COLUMNS,
                 "noise_mass_mean", "noise_mass_std", "noise_mass_last_layer_mean", *TIMING_COLUMNS, *search.FLAG_COLUMNS]
ACCURACIES = ["test_accuracy", "test_macro_accuracy", "val_accuracy"]


def find_records(dirs: list[Path]) -> list[Path]:
    """Every result.json under the given directories (or the given files), sorted, without repeats."""
    found = {p for d in map(Path, dirs) for p in ([d] if d.is_file() else d.rglob(RESULT))}
    return sorted(found)


def run_extremes(result: RunResult) -> dict[str, float]:
    """Each of EXTREMES at its largest over the run's evaluations and its divergence (nan: never measured;
    cdyn_bench.train.INFINITY: it overflowed)."""
    snapshots = result.history + ([result.divergence] if result.divergence else [])
    out = {}
    for key in EXTREMES:
        values = [row[key] for row in snapshots if row.get(key) is not None and not math.isnan(row[key])]
        out[key] = max(values) if values else math.nan
    return out


def flatten(result: RunResult) -> dict:
    """One table row: the config flattened to dotted keys, metrics, status, sizes, timings, diagnostics and history."""
    # The search rule says how an experiment's search was extended, not what a run computed.
    config = {k: v for k, v in result.config.items() if k != "search"}
    config = {**LATER_KNOBS, **pd.json_normalize(config, sep=".").iloc[0].to_dict()}
    config = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in config.items()}
    run = {k: getattr(result, k) for k in RUN_COLUMNS}
    run["numerics"] = stamp(result)
    run["diverged_at"] = math.nan if result.diverged_at is None else result.diverged_at
    at = result.divergence or {}
    if at.get("grad_norm") is not None and not math.isnan(at["grad_norm"]):
        run["grad_norm_max"] = max(result.grad_norm_max, at["grad_norm"])
    metrics = {m: result.metrics.get(m, math.nan) for m in METRICS + SELECTIVITY + LAST + BITS}
    return {**config, **run, **metrics, **run_extremes(result), "history": result.history}


def load(dirs: list[Path]) -> tuple[pd.DataFrame, list[str]]:
    """(one row per finished record, one warning line per unreadable record, naming its path)."""
    rows, problems = [], []
    for path in find_records(dirs):
        try:
            rows.append(flatten(read_result(path)))
        except ValueError as err:
            problems.append(str(err).splitlines()[0])
    df = pd.DataFrame(rows)
    return (df.drop_duplicates("config_hash", ignore_index=True) if rows else df), problems


def pooled(df: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """df with the records of `extra` whose cell (config up to seed and search keys) df has: the same cells
    at other learning rates or caps, e.g. from another experiment's folder or a search's extension."""
    if extra.empty:
        return df
    both = pd.concat([df, extra], ignore_index=True)
    keys = [c for c in config_columns(both) if c not in NOT_CELL_KEYS + search.SEARCH_KEYS]
    ids = search.cell_ids(both, keys)
    keep = ids.iloc[len(df):].isin(set(ids.iloc[:len(df)])).to_numpy()
    return pd.concat([df, extra[keep]], ignore_index=True).drop_duplicates("config_hash", ignore_index=True)


def config_columns(df: pd.DataFrame) -> list[str]:
    outputs = RUN_COLUMNS + STAMP + METRICS + SELECTIVITY + LAST + BITS + list(EXTREMES) + ["history"]
    return [c for c in df.columns if c not in outputs]


def implied(df: pd.DataFrame, column: str, swept: list[str]) -> bool:
    """True for a model.*/task.* key that only changes with model.name/task.name (a preset's knobs)."""
    owner = column.split(".")[0] + ".name"
    if owner == column or owner not in swept:
        return False
    return bool(df.groupby(owner, dropna=False)[column].nunique(dropna=False).max() == 1)


def swept_keys(df: pd.DataFrame) -> list[str]:
    """Config keys whose values differ among the records, without seed, how-to-run and preset knobs."""
    varying = [c for c in config_columns(df) if c not in NOT_CELL_KEYS and df[c].nunique(dropna=False) > 1]
    return [c for c in varying if not implied(df, c, varying)]


def cell_keys(df: pd.DataFrame) -> list[str]:
    """What names a cell of the table: task and model names, then the other swept keys but OVER."""
    return NAME_KEYS + [k for k in swept_keys(df) if k not in NAME_KEYS + OVER]


def select_best(df: pd.DataFrame, cell: list[str], over: list[str]) -> pd.DataFrame:
    """The runs of the `over` setting with the best mean validation score over seeds, per cell: accuracy, or
    bits per character for a character-level task (search.run_scores).

    A diverged run fails here (accuracy 0, bits +inf), so a setting that diverges for some seeds ranks below
    a stable one of equal score; ties go to the first setting in sorted order.
    """
    if not over:
        return df
    means = df.assign(score=search.run_scores(df)).groupby(cell + over, dropna=False)["score"].mean().reset_index()
    best = means.sort_values("score", ascending=False, kind="stable").drop_duplicates(cell)
    return df.merge(best[cell + over], on=cell + over, how="inner")


def scored(df: pd.DataFrame) -> pd.DataFrame:
    """The runs with every accuracy of a diverged run set to 0 (a failed run), and `completed_*` copies
    that are NaN for diverged runs."""
    completed = df["status"] == "completed"
    failed = {m: df[m].where(completed, 0.0) for m in ACCURACIES}
    finished = {f"completed_{m}": df[m].where(completed) for m in ACCURACIES}
    return df.assign(**failed, **finished, diverged=~completed)


def aggregate(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of `keys`: accuracy mean, std and max - min over all seeds (a diverged seed counts 0), test accuracy
    over the completed seeds, n, n_diverged, sizes and timings (a run column among the keys, e.g. state_size
    for the frontier figure, stays a key)."""
    columns = dict(
        test_accuracy_mean=("test_accuracy", "mean"), test_accuracy_std=("test_accuracy", "std"),
        test_accuracy_range=("test_accuracy", lambda a: a.max() - a.min()),
        test_accuracy_completed_mean=("completed_test_accuracy", "mean"),
        test_macro_accuracy_mean=("test_macro_accuracy", "mean"), val_accuracy_mean=("val_accuracy", "mean"),
        n=("seed", "size"), n_diverged=("diverged", "sum"), steps_mean=("steps", "mean"),
        n_params=("n_params", "first"), state_size=("state_size", "first"),
        diverged_at_median=("diverged_at", "median"), grad_norm_max=("grad_norm_max", "max"),
        **{key: (key, "max") for key in EXTREMES},
        noise_mass_mean=("noise_mass", "mean"), noise_mass_std=("noise_mass", "std"),
        noise_mass_last_layer_mean=("noise_mass_last_layer", "mean"),
        train_seconds_mean=("train_seconds", "mean"), wall_seconds_mean=("wall_seconds", "mean"),
        tokens_per_s_mean=("tokens_per_s", "mean"), test_last_accuracy_mean=("test_last_accuracy", "mean"),
        test_bits_per_char_mean=("test_bits_per_char", "mean"), test_bits_per_char_std=("test_bits_per_char", "std"),
        val_bits_per_char_mean=("val_bits_per_char", "mean"),
    )
    out = scored(df).groupby(keys, dropna=False, sort=True, observed=True).agg(**{k: v for k, v in columns.items() if k not in keys})
    return out.reset_index()


def table(summary: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The report table: the keys, then TABLE_COLUMNS, in that order, and the last-position accuracy where a
    record has it."""
    last = ["test_last_accuracy_mean"] if summary["test_last_accuracy_mean"].notna().any() else []
    bits = [f"{m}_{s}" for m in BITS for s in ("mean", "std")[:1 + (m == BITS[0])]]
    bits = bits if summary["test_bits_per_char_mean"].notna().any() else []
    return summary[keys + TABLE_COLUMNS + last + bits].reset_index(drop=True)


def build(df: pd.DataFrame, rule: search.SearchRule | None = None) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(the table, its cell keys, the swept OVER keys it tuned) for loaded records.

    A cell's step cap is part of its search, not of the cell: each (cell, lr) is judged at the longest cap
    tried for it, and the table carries the search flags of cdyn_bench.search (lr_edge, at_cap, ...)."""
    cell, over = judged_keys(df)
    df = at_longest_caps(df)
    summary = aggregate(select_best(df, cell, over), cell + over)
    flagged = search_flags(df, cell, over, rule or search.SearchRule())
    return table(summary.merge(flagged, on=cell, how="left"), cell + over), cell, over


def judged_keys(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(the cell keys without the search's own keys, the swept OVER keys)."""
    return [k for k in cell_keys(df) if k not in search.SEARCH_KEYS], [k for k in OVER if k in swept_keys(df)]


def at_longest_caps(df: pd.DataFrame) -> pd.DataFrame:
    """The records at the longest step cap tried for each cell and tuned setting (search.longest_cap)."""
    cell, over = judged_keys(df)
    return search.longest_cap(df, cell + [k for k in over if k != search.LR]).reset_index(drop=True)


def search_flags(df: pd.DataFrame, cell: list[str], over: list[str], rule: search.SearchRule) -> pd.DataFrame:
    """Per cell: search.FLAG_COLUMNS (the lr grid, the cap at the best lr, lr_edge, at_cap, the bound hit)."""
    keys = cell + [k for k in over if k != search.LR]
    flagged = search.flags(df, keys, rule)
    flagged["limit"] = [search.limit(row, rule) for row in flagged.to_dict("records")]
    if keys != cell:  # a tuned weight decay: the flags of the setting the table chose
        flagged = flagged.sort_values("best_val", ascending=False, kind="stable").drop_duplicates(cell)
    return flagged[cell + search.FLAG_COLUMNS]


def flag_warning(tab: pd.DataFrame, keys: list[str]) -> list[str]:
    """One line naming the cells whose verdict rests on where the search stopped."""
    hit = tab[tab["lr_edge"].astype(bool) | tab["at_cap"].astype(bool)]
    if hit.empty:
        return []
    names = ["/".join(str(row[k]) for k in keys if k not in OVER) + f" ({flag_text(row)})" for _, row in hit.iterrows()]
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return [f"{len(hit)} of {len(tab)} cells rest on the search (lr at a grid edge or still learning at the cap): "
            f"{shown}; `reproduce.py --search` extends them"]


def flag_text(row: pd.Series) -> str:
    """'lr edge, at cap; step ceiling 4500': the flags of a table row and the bound its search hit."""
    flags = [name for name, on in (("lr edge", row["lr_edge"]), ("at cap", row["at_cap"])) if on is True]
    return ", ".join(flags) + (f"; {row['limit']}" if isinstance(row["limit"], str) and row["limit"] else "")


def mad_score(tab: pd.DataFrame) -> pd.DataFrame:
    """MAD's score per model and task: the mean over settings (the table's rows) of the test accuracy
    of the optimiser setting best on validation, a diverged seed counted as accuracy 0."""
    return (tab.groupby(NAME_KEYS[::-1], sort=True)
            .agg(mad_score=("test_accuracy_mean", "mean"), settings=("test_accuracy_mean", "size")).reset_index())


def write_mad_score(tab: pd.DataFrame, out: Path) -> list[Path]:
    scores = mad_score(tab)
    scores.to_csv(out / "mad_score.csv", index=False)
    (out / "mad_score.md").write_text(scores.round(4).to_markdown(index=False) + "\n")
    return [out / "mad_score.csv", out / "mad_score.md"]


def varying(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """The `keys` that take more than one value in the records."""
    return [k for k in keys if df[k].nunique(dropna=False) > 1]


def write_comparison(df: pd.DataFrame, cell: list[str], over: list[str], arm: str, out: Path) -> list[Path]:
    """compare.csv and compare.md: stats.compare of the test accuracy (bits per character for a character-level
    task) at each cell's chosen setting."""
    from cdyn_bench.stats import compare

    keys = [k for k in varying(df, cell) if k != arm]
    metric = "test_bits_per_char" if search.character_level(df).all() else "test_accuracy"
    pairs = compare(scored(select_best(df, cell, over)), arm, keys, metric)
    pairs.to_csv(out / "compare.csv", index=False)
    if pairs.empty:  # every cell has one value of the arm (a cut of the grid): nothing to compare
        (out / "compare.md").write_text(f"No cell of these records has two values of {arm}: nothing to compare.\n")
        return [out / "compare.csv", out / "compare.md"]
    shown = pairs.assign(**{c: pairs[c].map(lambda v: f"{v:.4f}") for c in
                            ("mean_a", "mean_b", "difference", "ci_low", "ci_high")},
                         welch_t=pairs["welch_t"].map(lambda v: f"{v:.2f}"), dof=pairs["dof"].map(lambda v: f"{v:.1f}"),
                         p=pairs["p"].map(lambda v: f"{v:.3g}"))
    (out / "compare.md").write_text(shown.to_markdown(index=False) + "\n")
    return [out / "compare.csv", out / "compare.md"]


def significant(value: float) -> str:
    """A diagnostic in 3 significant digits; 'inf' where it overflowed (recorded as 1e308), '-' where unknown."""
    if pd.isna(value):
        return "-"
    return "inf" if abs(value) >= 1e300 else f"{value:.3g}"


def accuracy_text(mean: float, std: float) -> str:
    return f"{mean:.4f}" + ("" if pd.isna(std) else f" ± {std:.4f}")


def pipe_table(frame: pd.DataFrame, right: list[str]) -> str:
    """A Markdown pipe table padded to column width, so it reads the same in a terminal and on GitHub."""
    widths = {c: max([len(c)] + [len(v) for v in frame[c]]) for c in frame.columns}
    pad = {c: (str.rjust if c in right else str.ljust) for c in frame.columns}
    head = "| " + " | ".join(c.ljust(widths[c]) for c in frame.columns) + " |"
    rule = "|" + "|".join("-" * (widths[c] + 1) + (":" if c in right else "-") for c in frame.columns) + "|"
    rows = ["| " + " | ".join(pad[c](row[c], widths[c]) for c in frame.columns) + " |"
            for _, row in frame.iterrows()]
    return "\n".join([head, rule, *rows])


def markdown(tab: pd.DataFrame, keys: list[str]) -> str:
    """The table for reading: keys, test accuracy over all seeds (diverged = 0) ± std, over completed seeds,
    diverged seeds of all."""
    shown = pd.DataFrame({k: tab[k].map(str) for k in keys})
    if "test_bits_per_char_mean" in tab:  # a character-level task: its headline first
        stats = tab[["test_bits_per_char_mean", "test_bits_per_char_std"]].itertuples(index=False)
        shown["test bits/char"] = [accuracy_text(*row) for row in stats]
        shown["val bits/char"] = tab["val_bits_per_char_mean"].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
    stats = tab[["test_accuracy_mean", "test_accuracy_std"]].itertuples(index=False)
    shown["test accuracy"] = [accuracy_text(*row) for row in stats]
    shown["seed range"] = tab["test_accuracy_range"].map("{:.4f}".format)
    shown["completed seeds"] = tab["test_accuracy_completed_mean"].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
    if "test_last_accuracy_mean" in tab:
        shown["last position"] = tab["test_last_accuracy_mean"].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
    shown["val accuracy"] = tab["val_accuracy_mean"].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
    shown["diverged"] = [f"{d}/{n}" for d, n in zip(tab["n_diverged"], tab["n"])]
    shown["diverged at"] = tab["diverged_at_median"].map(lambda v: "-" if pd.isna(v) else f"{v:.0f}")
    shown["max grad norm"] = tab["grad_norm_max"].map(significant)
    shown["max log \\|alpha\\|"] = tab["log_alpha_max"].map(significant)  # escaped: a bare | splits the cell
    shown["max log eta"] = tab["log_eta_max"].map(significant)
    if tab["noise_mass_mean"].notna().any():
        shown["noise mass"] = tab["noise_mass_mean"].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
        shown["noise mass, last layer"] = tab["noise_mass_last_layer_mean"].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
    shown["search"] = [flag_text(row) or "-" for _, row in tab.iterrows()]
    shown["lr grid"] = tab["lr_grid"]
    shown["cap"] = tab["cap"].map(lambda v: "-" if pd.isna(v) else f"{v:.0f}")
    shown["steps to 0.99"] = [("-" if pd.isna(m) else f"{m:.0f}") + f" ({r}/{n})"
                              for m, r, n in zip(tab["steps_to_target_median"], tab["n_reached"], tab["n"])]
    shown["state size"] = tab["state_size"].map("{:,}".format)
    shown["params"] = tab["n_params"].map("{:,}".format)
    shown["steps"] = tab["steps_mean"].map("{:.0f}".format)
    shown["train s"] = tab["train_seconds_mean"].map("{:.1f}".format)
    shown["tokens/s"] = tab["tokens_per_s_mean"].map("{:,.0f}".format)
    numeric = [k for k in keys if pd.api.types.is_numeric_dtype(tab[k])]
    return pipe_table(shown, right=[c for c in shown.columns if c not in keys or c in numeric])


def write_tables(tab: pd.DataFrame, keys: list[str], out: Path) -> list[Path]:
    """table.csv and table.parquet (numbers; Parquet needs pyarrow), table.md (for reading)."""
    out.mkdir(parents=True, exist_ok=True)
    tab.to_csv(out / "table.csv", index=False)
    (out / "table.md").write_text(markdown(tab, keys) + "\n")
    try:
        tab.to_parquet(out / "table.parquet", index=False)
    except ImportError as err:
        print(f"warning: table.parquet skipped: {err}".splitlines()[0], file=sys.stderr)
        return [out / "table.csv", out / "table.md"]
    return [out / "table.csv", out / "table.md", out / "table.parquet"]


def unfinished(dirs: list[Path]) -> list[str]:
    """One warning line per sweep directory whose manifest plans cells that have no finished record."""
    from cdyn_bench.sweep import missing_cells, read_manifest

    lines = []
    for d in dirs:
        manifest = read_manifest(Path(d))
        missing = missing_cells(manifest) if manifest else []
        if missing:
            lines.append(f"{d}: {len(missing)} of {len(manifest.planned)} planned cells have no finished "
                         f"record (e.g. {Path(missing[0].run_dir).name}); rerun the sweep to finish them")
    return lines


def mixed_versions(df: pd.DataFrame) -> list[str]:
    """A warning line when the records come from more than one numerics version (or form version)."""
    seen = sorted(df["numerics"].unique())
    if len(seen) < 2:
        return []
    return [f"the records mix numerics versions {', '.join(map(str, seen))}: one table should not; "
            f"rerun the sweep with the current code to regenerate the older cells"]


def matches(value: object, allowed: list[str]) -> bool:
    """Whether a config value is one of the values as written on the command line: by text (exp, True), or
    by number for numeric values (2 matches 2.0, a float column with a missing value; 1.0 matches 1)."""
    if str(value) in allowed:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value in [parsed for text in allowed if (parsed := as_number(text)) is not None]
    return False


def as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def select_where(df: pd.DataFrame, conditions: list[str]) -> pd.DataFrame:
    """The rows whose config matches every 'KEY=V1,V2' condition (values compared as the table prints
    them, e.g. 'exp', '1.05', 'True'); ValueError naming a malformed condition or an unknown key."""
    for condition in conditions:
        key, sep, values = condition.partition("=")
        if not sep or not values:
            raise ValueError(f"--where {condition!r}: expected KEY=VALUE[,VALUE...], e.g. model.mixer.phi=exp,identity")
        check_keys(df, [key])
        allowed = values.split(",")
        df = df[df[key].map(lambda value: matches(value, allowed))]
        if df.empty:
            raise ValueError(f"--where {condition}: no record has {key} in {allowed}")
    return df.reset_index(drop=True)


# Run columns a figure may use as its x axis besides config keys (the recall vs state-size frontier).
# A figure axis made from the records: which factor a run changed from the baseline of the others.
CONDITION = "condition"
BASELINE = "baseline"
RUN_AXES = ["state_size", "n_params", CONDITION]


def check_keys(df: pd.DataFrame, keys: list[str], axes: list[str] = ()) -> None:
    for key in keys:
        if key not in config_columns(df) and key not in axes:
            raise ValueError(f"{key!r} is not a config key of these records; swept: {', '.join(swept_keys(df))}"
                             + (f"; or one of {', '.join(axes)}" if axes else ""))
