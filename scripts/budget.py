"""What each experiment of scripts/reproduce.py cost, measured from its committed run records.

A sweep's time is the sum of its runs' wall seconds over the workers that ran them side by side (2
joblib workers x 1 thread on the 2-core reference machine): the wall time of the sweep run in one go.
Records copied from another sweep (`reuse`) ran nowhere and count nothing. The budget is each
finding's own sweeps; its extended ones (`reproduce.py --extended`) and its search extension
(`reproduce.py --search`, <finding>_search) are shown apart.

    python scripts/budget.py normalization key_scaling unstable_evolution     # the three findings
    python scripts/budget.py readout_selectivity position evolution_structure mqar_frontier depth
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce import FINDINGS, RESULTS, records, search_folder  # noqa: E402

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
        parts = (("budget", finding.sweeps), ("extended", finding.extended), ("search", [search_folder(name)]))
        for part, sweeps in parts:
            for sweep in sweeps:
                rows.append({"finding": name, "sweep": sweep, "part": part,
                             **sweep_cost(records(root / finding.folder, sweep), workers)})
    return pd.DataFrame(rows, columns=["finding", "sweep", "part", "planned", "finished", "trained", "minutes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("findings", nargs="*", metavar="FINDING", help=f"any of {', '.join(FINDINGS)} (default: all)")
    parser.add_argument("--root", type=Path, default=RESULTS, help="where the findings/ and principles/ folders are")
    parser.add_argument("--workers", type=int, default=2, help="training processes that ran side by side")
    args = parser.parse_args()
    unknown = [f for f in args.findings if f not in FINDINGS]
    if unknown:
        parser.error(f"finding {unknown[0]!r}: allowed: {', '.join(FINDINGS)}")
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: must be >= 1")
    table = costs(args.findings or list(FINDINGS), args.root, args.workers)
    print(table.to_string(index=False, float_format=lambda m: f"{m:.1f}"))
    for part in ("budget", "extended", "search"):
        rows = table[table["part"] == part]
        minutes, missing = rows["minutes"].sum(), (rows["planned"] - rows["finished"]).clip(lower=0).sum()
        unfinished = f", {missing} planned runs not finished" if missing else ""
        print(f"{part}: {minutes:.0f} min ({minutes / 60:.2f} h){unfinished}")
    total = table["minutes"].sum()
    print(f"budget + extended + search: {total:.0f} min ({total / 60:.2f} h)")


if __name__ == "__main__":
    main()
