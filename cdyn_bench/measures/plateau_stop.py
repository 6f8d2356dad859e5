"""Choose the search rule's plateau stop from the committed records: would it have cut off a late learner?

For every committed run of the findings and principles that reached 0.9 validation accuracy, replay the
plateau stop (cdyn_bench.train.plateaued, through cdyn_bench.search.stop_step) on its recorded history
for each patience K and count the runs it would have stopped before they reached 0.9; list the latest
take-offs and where the chosen K would have stopped them. Writes results/bench/plateau_stop.md.

    cdyn-reproduce --report-only     # with every other report (or cdyn_bench.measures.plateau_stop.write)
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from cdyn_bench import search, table

def take_offs(df: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """The runs whose validation accuracy reached `level`: the step it did, and the longest stall before it."""
    rows = []
    for _, run in df.iterrows():
        history = [h for h in run["history"] if h.get("val_accuracy") is not None]
        reach = next((h["step"] for h in history if h["val_accuracy"] >= level), None)
        if reach is not None:
            rows.append({"sweep": run["sweep_name"], "model": run["model.name"], "task": run["task.name"],
                         "lr": run["train.lr"], "seed": run["seed"], "reached_at": reach, "history": history})
    return pd.DataFrame(rows)


def write(results: Path) -> Path:
    """Replay the stop on every record under results/findings and results/principles; writes
    results/bench/plateau_stop.md with the search rule's own delta and patience."""
    delta, chosen = search.SearchRule().plateau_delta, search.SearchRule().patience
    df, _ = table.load(search.experiment_records(results))
    learners = take_offs(df)
    counts = []
    for k in range(1, 11):
        stops = learners["history"].map(lambda h: search.stop_step(h, k, delta))
        cut = (stops < learners["reached_at"]).sum()
        counts.append({"patience K": k, "learners": len(learners), "stopped before 0.9": int(cut)})
    latest = learners.sort_values("reached_at", ascending=False, kind="stable").head(8).copy()
    latest["stop at K"] = latest["history"].map(lambda h: search.stop_step(h, chosen, delta))
    latest["stop at K"] = latest["stop at K"].map(lambda v: "never" if math.isnan(v) else f"{v:.0f}")
    text = ["# The plateau stop, replayed on the committed records (`cdyn-reproduce --report-only`)", "",
            f"{len(df)} records of results/findings and results/principles; {len(learners)} reached 0.9 validation "
            f"accuracy. A run stops when its last K evaluations stay within {delta} of the best before them. "
            f"Chosen: K = {chosen} (the search rule's `patience`).", "",
            pd.DataFrame(counts).to_markdown(index=False), "",
            f"The latest take-offs, and where K = {chosen} would have stopped them:", "",
            latest.drop(columns="history").to_markdown(index=False), ""]
    out = results / "bench" / "plateau_stop.md"
    out.write_text("\n".join(text))
    return out
