"""Choose the search rule's plateau stop from the committed records: would it have cut off a late learner?

For every committed run of the findings and principles that reached 0.9 validation accuracy, replay the
plateau stop (cdyn_bench.train.plateaued, through cdyn_bench.search.stop_step) on its recorded history
for each patience K and count the runs it would have stopped before they reached 0.9; list the latest
take-offs and where the chosen K would have stopped them. Writes results/bench/plateau_stop.md.

    python scripts/plateau_stop.py [--delta 0.01] [--chosen 8]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from cdyn_bench import report, search

ROOT = Path(__file__).resolve().parents[1]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delta", type=float, default=search.SearchRule().plateau_delta)
    parser.add_argument("--chosen", type=int, default=search.SearchRule().patience)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "plateau_stop.md")
    args = parser.parse_args()
    dirs = sorted((ROOT / "results").glob("findings/*/records")) + sorted((ROOT / "results").glob("principles/*/records"))
    df, _ = report.load(dirs)
    learners = take_offs(df)
    counts = []
    for k in range(1, 11):
        stops = learners["history"].map(lambda h: search.stop_step(h, k, args.delta))
        cut = (stops < learners["reached_at"]).sum()
        counts.append({"patience K": k, "learners": len(learners), "stopped before 0.9": int(cut)})
    latest = learners.sort_values("reached_at", ascending=False, kind="stable").head(8).copy()
    latest["stop at K"] = latest["history"].map(lambda h: search.stop_step(h, args.chosen, args.delta))
    latest["stop at K"] = latest["stop at K"].map(lambda v: "never" if math.isnan(v) else f"{v:.0f}")
    text = [f"# The plateau stop, replayed on the committed records (`python scripts/plateau_stop.py`)", "",
            f"{len(df)} records of results/findings and results/principles; {len(learners)} reached 0.9 validation "
            f"accuracy. A run stops when its last K evaluations stay within {args.delta} of the best before them. "
            f"Chosen: K = {args.chosen} (the search rule's `patience`).", "",
            pd.DataFrame(counts).to_markdown(index=False), "",
            f"The latest take-offs, and where K = {args.chosen} would have stopped them:", "",
            latest.drop(columns="history").to_markdown(index=False), ""]
    args.out.write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
