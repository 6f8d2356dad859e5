"""The transfer table (issue 29): each finding's synthetic verdict beside what the same arms do on text.

Reads the records of conf/experiment/transfer_text.yaml (and the search's extension of them), picks each arm's
learning rate on its mean validation bits per character (table.select_best, the longest cap tried), and for
every row of ROWS compares the two arms' test bits per character over seeds (Welch's t, the bootstrap interval:
cdyn_bench.stats). A row "carries over" when the text difference is clear (p < 0.05 and the interval excludes 0)
in the direction the synthetic verdict favours, is "reversed" when it is clear the other way, and otherwise
says there is no clear difference on text. The frontier: the presets' bits per character against their state
size, and the rank correlation of their text ranking with their MQAR accuracy (results/principles/mqar_frontier).

    cdyn-reproduce transfer_text --report-only   # writes results/transfer/transfer_text/transfer.{md,csv}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cdyn_bench import search, stats, table
from cdyn_bench.experiments import TEXT_PRESETS, records, search_folder

SWEEP = "transfer_text"
# The softmax backbone every finding arm shares (conf/text_arm), unless the row varies it.
BACKBONE = {"model.name": "custom", "model.mixer.A": "identity", "model.mixer.head_dim": 64,
            "model.mixer.scale_b": True, "model.mixer.phi": "exp", "model.mixer.eta": "sum"}


@dataclass(frozen=True)
class Row:
    """One comparison: the records `where` holds (over BACKBONE), two values of `arm`, the one the synthetic
    verdict favours first, and that verdict as results/README.md states it."""

    finding: str
    arm: str
    favoured: object
    other: object
    synthetic: str
    where: dict = field(default_factory=dict)
    equal: bool = False  # the synthetic verdict found no difference (carrying over = no clear difference on text)


ROWS = [
    Row("1. normalisation, phi = exp", "model.mixer.eta", "sum", "one",
        "eta = sum: every seed learns, in 200-300 steps; eta = 1 slower and less reliable (2 of 3 seeds by 1,500 "
        "steps), not a necessity"),
    Row("1. normalisation, phi = identity", "model.mixer.eta", "one", "abs_sum",
        "reversed for the linear readout: eta = 1 recalls (0.997 at frac_noise 0.2), eta = abs_sum does not",
        {"model.mixer.phi": "identity"}),
    *(Row(f"2. key scaling, n = {n}", "model.mixer.scale_b", True, False,
          "b = k / sqrt(n) helps softmax on noisy recall; on MQAR not reproduced as stated",
          {"model.mixer.head_dim": n}) for n in (16, 64, 128)),
    Row("3. normalisation under A = 1.05 I", "model.mixer.eta", "sum", "one",
        "A = 1.05 I trains when normalised (phi = exp, seq_len 64), not with eta = 1",
        {"model.mixer.A": "fixed", "model.mixer.gamma": 1.05}),
    Row("3. A = 1.05 I against A = I, eta = sum", "model.mixer.gamma", 1.0, 1.05,
        "normalised, 1.05 I learns as A = I does at seq_len 64",
        {"model.mixer.A": "fixed", "model.mixer.eta": "sum"}, equal=True),
    Row("3. A = 1.05 I against A = I, eta = 1", "model.mixer.gamma", 1.0, 1.05,
        "unnormalised, 1.05 I fails where A = I learns",
        {"model.mixer.A": "fixed", "model.mixer.eta": "one"}),
]
COLUMNS = ["finding", "synthetic verdict", "favoured arm", "other arm", "point favoured", "point other",
           "bits favoured", "bits other", "seeds favoured", "seeds other", "difference", "p", "interval", "carries over", "search"]


def point(arm: pd.DataFrame) -> str:
    """Where an arm was judged: its chosen lr and step cap ('lr 0.01, 600 steps')."""
    if arm.empty or search.LR not in arm or search.CAP not in arm:
        return "-"
    return f"lr {arm[search.LR].iloc[0]:g}, {int(arm[search.CAP].max()):,} steps"


def chosen(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the runs at each arm's chosen lr, the search flags per arm) of the transfer records."""
    folder = results / "transfer"
    dirs = [d for d in (records(folder, SWEEP), records(folder, search_folder(SWEEP))) if d.is_dir()]
    df, _ = table.load(dirs)
    if df.empty:
        return df, df
    df = table.at_longest_caps(df)
    cell, over = table.judged_keys(df)
    flags = table.search_flags(df, cell, over, search.SearchRule())
    runs = table.select_best(df, cell, over)
    return runs, runs[cell].drop_duplicates().merge(flags, on=cell, how="left")


def matching(frame: pd.DataFrame, where: dict) -> pd.Series:
    """The rows with these values; a key the frame lacks (not a cell key: the same in every record) matches."""
    mask = pd.Series(True, index=frame.index)
    for key, value in where.items():
        if key in frame:
            mask &= frame[key] == value
    return mask


def compare_row(row: Row, runs: pd.DataFrame, flags: pd.DataFrame) -> dict:
    where = {k: v for k, v in {**BACKBONE, **row.where}.items() if k != row.arm}
    arms = {v: runs[matching(runs, {**where, row.arm: v})].sort_values("seed") for v in (row.favoured, row.other)}
    a, b = (arms[v]["test_bits_per_char"].to_numpy(float) for v in (row.favoured, row.other))
    out = {"finding": row.finding, "synthetic verdict": row.synthetic, "favoured arm": f"{row.arm.split('.')[-1]}="
           f"{row.favoured}", "other arm": f"{row.arm.split('.')[-1]}={row.other}",
           "point favoured": point(arms[row.favoured]), "point other": point(arms[row.other])}
    # The search extends each cell on its own: two arms judged at different caps did not train alike.
    caps = [arm[search.CAP].max() for arm in arms.values() if search.CAP in arm and not arm.empty]
    unequal = " (at unequal steps)" if len(set(caps)) > 1 else ""
    if len(a) < 2 or len(b) < 2:
        return {**out, "carries over": f"not run yet ({len(a)} and {len(b)} seeds)"}
    diverged = [int(np.isnan(x).sum()) for x in (a, b)]  # a diverged run has no test bits
    if any(diverged):
        verdict = (f"yes: {out['other arm']} diverged ({diverged[1]} of {len(b)} seeds)" if diverged[1] > diverged[0]
                   else f"reversed: {out['favoured arm']} diverged ({diverged[0]} of {len(a)} seeds)"
                   if diverged[0] > diverged[1] else f"both diverge ({diverged[0]} and {diverged[1]} seeds)")
        return {**out, "seeds favoured": " ".join(f"{x:.3f}" for x in a), "seeds other": " ".join(f"{x:.3f}" for x in b),
                "carries over": verdict, "search": search_marks(flags, where, row)}
    t, dof = stats.welch(b, a)  # bits: the favoured arm is better when it has fewer
    p = stats.two_sided_p(t, dof)
    low, high = stats.bootstrap_interval(b, a)
    clear = (low > 0 or high < 0) and p < 0.05
    if row.equal:
        verdict = ("yes: no clear difference on text" if not clear else
                   f"no: {out['favoured arm'] if b.mean() > a.mean() else out['other arm']} better on text")
    else:
        verdict = "no clear difference on text" if not clear else "yes" if b.mean() > a.mean() else "reversed"
    verdict += unequal
    return {**out, "bits favoured": a.mean(), "bits other": b.mean(), "seeds favoured": " ".join(f"{x:.3f}" for x in a),
            "seeds other": " ".join(f"{x:.3f}" for x in b), "difference": b.mean() - a.mean(), "p": p,
            "interval": f"[{low:.3f}, {high:.3f}]", "carries over": verdict, "search": search_marks(flags, where, row)}


def search_marks(flags: pd.DataFrame, where: dict, row: Row) -> str:
    """The search flags (lr_edge, at_cap) of either arm of a row, '-' for none."""
    flagged = flags[matching(flags, where) & flags[row.arm].isin([row.favoured, row.other])]
    return ", ".join(name for name in ("lr_edge", "at_cap") if flagged[name].astype(bool).any()) or "-"


def frontier(runs: pd.DataFrame, results: Path) -> pd.DataFrame:
    """Per preset: state size, test bits per character over seeds, and its MQAR accuracy at the same width."""
    presets = runs[runs["model.name"].isin(TEXT_PRESETS)]
    rows = (presets.groupby("model.name").agg(state_size=("state_size", "first"), bits=("test_bits_per_char", "mean"),
                                               bits_std=("test_bits_per_char", "std"), seeds=("seed", "size"))
            .reset_index())
    mqar = results / "principles" / "mqar_frontier" / "table.csv"
    if mqar.exists():
        synthetic = pd.read_csv(mqar)
        synthetic = synthetic[synthetic["model.d_model"] == 64].groupby("model.name")["test_accuracy_mean"].mean()
        rows["mqar_accuracy"] = rows["model.name"].map(synthetic)
    return rows.sort_values("state_size", kind="stable").reset_index(drop=True)


def spearman(x: pd.Series, y: pd.Series) -> float:
    both = pd.DataFrame({"x": x, "y": y}).dropna()
    return float(both["x"].rank().corr(both["y"].rank())) if len(both) > 2 else math.nan


def write(folder: Path) -> Path:
    """transfer.csv and transfer.md under folder/transfer_text (folder: results/transfer)."""
    results = folder.parent
    runs, flags = chosen(results)
    out = folder / SWEEP
    out.mkdir(parents=True, exist_ok=True)
    if runs.empty:
        (out / "transfer.md").write_text("No records of transfer_text yet: `cdyn-reproduce transfer_text`.\n")
        return out / "transfer.md"
    rows = pd.DataFrame([compare_row(row, runs, flags) for row in ROWS], columns=COLUMNS)
    rows.to_csv(out / "transfer.csv", index=False)
    front = frontier(runs, results)
    front.to_csv(out / "frontier.csv", index=False)
    shown = rows.assign(**{c: rows[c].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}")
                           for c in ("bits favoured", "bits other", "difference")},
                        p=rows["p"].map(lambda v: "-" if pd.isna(v) else f"{v:.2g}")).fillna("-")
    rho = spearman(-front["bits"], front.get("mqar_accuracy", front["bits"] * math.nan))
    front_shown = front.assign(bits=[f"{m:.3f} ± {s:.3f}" for m, s in zip(front["bits"], front["bits_std"])],
                               state_size=front["state_size"].map("{:,}".format)).drop(columns="bits_std")
    text = [
        "# Transfer to text: the findings' arms on character-level language modelling",
        "",
        "Task: `task=text` (CPython 3.11.7's standard library, bytes, windows of 128, every position scored); "
        "bits per character on the 1,024 fixed test windows, each arm's lr chosen on validation bits per character "
        "(lower is better). `difference` = bits of the other arm minus bits of the arm the synthetic verdict "
        "favours (positive: the favoured arm is better on text); p: Welch's t over seeds; interval: bootstrap 95% "
        "of the difference; `search`: a flag of the search rule on either arm (lr at a grid edge, still learning "
        "at the cap); `point`: the lr and step cap each arm is judged at. The search extends each arm on its own, "
        "so two arms can be judged at different caps: such a row says \"at unequal steps\", and its verdict waits "
        "for the search to bring both to a common cap. Written by cdyn_bench.measures.transfer.",
        "",
        shown.to_markdown(index=False),
        "",
        "## The frontier on text: bits per character against state size (presets as they are, d_model 64)",
        "",
        f"Spearman rank correlation of the presets' text ranking (fewer bits first) with their MQAR accuracy "
        f"(results/principles/mqar_frontier, d_model 64, mean over its two settings): {rho:.2f}.",
        "",
        front_shown.to_markdown(index=False),
        "",
    ]
    (out / "transfer.md").write_text("\n".join(text))
    return out / "transfer.md"
