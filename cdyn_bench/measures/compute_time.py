"""What each experiment of cdyn-reproduce cost, measured from its committed run records.

A sweep's time is the sum of its runs' wall seconds over the workers that ran them side by side (2
joblib workers x 1 thread on the 2-core reference machine): the wall time of the sweep run in one go.
Records copied from another sweep (`reuse`) ran nowhere and count nothing. The budget is each
finding's own sweeps; its extended ones (`cdyn-reproduce --extended`) and its search extension
(`cdyn-reproduce --search`, <finding>_search) are shown apart.

    cdyn-reproduce --report-only     # with every other report: results/bench/budget.md
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cdyn_bench.experiments import FINDINGS, records, search_folder

RESULT = "result.json"


def sweep_cost(folder: Path, workers: int) -> dict[str, float]:
    """One sweep's records folder: its planned runs (from its manifest), finished ones, those trained here and
    the minutes they took."""
    manifest = folder / "manifest.json"
    planned = len(json.loads(manifest.read_text())["planned"]) if manifest.exists() else 0
    runs = [json.loads(p.read_text()) for p in folder.glob(f"cells/*/{RESULT}")]
    trained = [r for r in runs if not r.get("reused_from")]
    return {"planned": planned, "finished": len(runs), "trained": len(trained),
            "minutes": sum(r["wall_seconds"] for r in trained) / workers / 60}


def costs(names: list[str], root: Path, workers: int) -> pd.DataFrame:
    rows = []
    for name in names:
        finding = FINDINGS[name]
        parts = (("budget", finding.sweeps), ("extended", finding.extended),
                 ("search", [search_folder(name)] if finding.sweeps else []))
        for part, sweeps in parts:
            for sweep in sweeps:
                rows.append({"finding": name, "sweep": sweep, "part": part,
                             **sweep_cost(records(root / finding.folder, sweep), workers)})
    return pd.DataFrame(rows, columns=["finding", "sweep", "part", "planned", "finished", "trained", "minutes"])


def write(results: Path, workers: int = 2) -> Path:
    """The cost of every experiment from its records under `results`; writes results/bench/budget.md."""
    table = costs(list(FINDINGS), results, workers)
    searched = [f for f in FINDINGS if (table[(table["finding"] == f) & (table["part"] == "search")]["finished"] > 0).any()]
    lines = [table.to_string(index=False, float_format=lambda m: f"{m:.1f}")]
    for part in ("budget", "extended", "search"):
        rows = table[table["part"] == part]
        minutes, missing = rows["minutes"].sum(), (rows["planned"] - rows["finished"]).clip(lower=0).sum()
        unfinished = f", {missing} planned runs not finished" if missing else ""
        lines.append(f"{part}: {minutes:.0f} min ({minutes / 60:.2f} h){unfinished}")
    total = table["minutes"].sum()
    lines.append(f"budget + extended + search: {total:.0f} min ({total / 60:.2f} h)")
    text = ["# What each experiment cost (`cdyn-reproduce --report-only`), from its committed records", "",
            f"Minutes = the sum of the runs' wall seconds over the {workers} workers that ran them side by side; "
            "records copied by `reuse` count nothing. \"search\" is each finding's extension by the search rule "
            f"(so far: {', '.join(searched) or 'none'}; cdyn-reproduce --search).", "", "```", *lines, "```", ""]
    out = results / "bench" / "budget.md"
    out.write_text("\n".join(text))
    return out
