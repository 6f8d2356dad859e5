"""Train committed run records again from their configs: the same numbers, and what they cost now.

A record's numbers (status, steps, divergence, test metrics, largest gradient norm) are a function of its
config and seed, so a rerun on the same kind of CPU gives them bit for bit (on another, float32 kernels that
round differently can move them: README, "CPUs"; the table says by how much); its wall time is what the run costs
on this machine today, against what was recorded (the same code, but a record may have been timed beside
other work, or before a faster kernel that kept the numbers). One record of each kind is rerun (a kind: the
config up to seed and learning rate, the cost factors being width, length, task and mixer), and each
sweep's cost now is estimated by scaling every record's recorded time by its kind's ratio. The reruns are kept
under --out, so a stopped rerun continues where it was.

    python scripts/rerun.py results/principles/*/records --jobs 2 --name rerun_principles
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from cdyn_bench.compose import from_record
from cdyn_bench.run import run

RESULT = "result.json"
BENCH = Path("results") / "bench"  # under the working directory: the repository root
# What a rerun must reproduce exactly.
NUMBERS = ("config_hash", "status", "steps", "diverged_at", "grad_norm_max", "metrics")


def kind(config: dict) -> str:
    """The config up to seed and learning rate, as a short hash."""
    rest = {**config, "seed": None, "train": {**config["train"], "lr": None}}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:8]


def rerun(path: Path, root: Path) -> dict:
    """Train one record's config under `root` (or read its finished rerun there) and compare it with the record."""
    old = json.loads(path.read_text())
    done = run(dataclasses.replace(from_record(old["config"]), progress=False), root)
    new = json.loads((root.parent / done.run_dir / RESULT).read_text())  # as written: nan/inf as the record has them
    differ = [key for key in NUMBERS if new[key] != old[key]]
    return {"record": str(path.parent.name), "recorded_s": old["wall_seconds"], "now_s": new["wall_seconds"],
            "recorded_acc": old["metrics"]["test_accuracy"], "now_acc": new["metrics"]["test_accuracy"],
            "same_numbers": "yes" if not differ else "no: " + ", ".join(differ)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="sweep records folders (holding cells/*/result.json)")
    parser.add_argument("--jobs", type=int, default=2, help="training processes side by side (the budget's 2)")
    parser.add_argument("--name", help="writes results/bench/NAME.{csv,md}")
    parser.add_argument("--out", type=Path, default=Path("outputs/rerun"), help="where the reruns are kept")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: must be >= 1")

    records = []
    for folder in args.folders:
        for path in sorted(folder.glob(f"cells/*/{RESULT}")):
            old = json.loads(path.read_text())
            if not old.get("reused_from"):
                records.append({"sweep": folder.parent.name if folder.name == "records" else folder.name,
                                "path": path, "kind": kind(old["config"]), "recorded_s": old["wall_seconds"]})
    if not records:
        sys.exit(f"folders {[str(f) for f in args.folders]}: no trained run records under cells/*/{RESULT}")
    frame = pd.DataFrame(records)
    # Per kind, the record with the median recorded time (the lower of two): a typical run, not the longest.
    ordered = frame.sort_values(["kind", "recorded_s", "path"])
    rank, size = ordered.groupby("kind").cumcount(), ordered.groupby("kind")["kind"].transform("size")
    chosen = ordered[rank == (size - 1) // 2]

    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(rerun, chosen["path"], [args.out / "cells"] * len(chosen)))
    reruns = pd.concat([chosen[["sweep", "kind"]].reset_index(drop=True), pd.DataFrame(runs)], axis=1)
    reruns["ratio"] = reruns["now_s"] / reruns["recorded_s"]

    frame["now_s"] = frame["recorded_s"] * frame["kind"].map(reruns.set_index("kind")["ratio"])
    sweeps = frame.groupby("sweep", sort=False).agg(runs=("path", "size"), recorded_min=("recorded_s", "sum"),
                                                    now_min=("now_s", "sum"))
    sweeps[["recorded_min", "now_min"]] /= 60 * args.jobs
    sweeps.loc["total"] = sweeps.sum()
    sweeps["runs"] = sweeps["runs"].astype(int)

    print(reruns.to_string(index=False, float_format="%.2f"))
    print(sweeps.to_string(float_format="%.1f"))
    same = (reruns["same_numbers"] == "yes").all()
    if args.name:
        BENCH.mkdir(parents=True, exist_ok=True)
        reruns.to_csv(BENCH / f"{args.name}.csv", index=False, float_format="%.4g")
        command = "python scripts/rerun.py " + " ".join(sys.argv[1:])
        BENCH.joinpath(f"{args.name}.md").write_text(
            f"# Committed records trained again\n\nProduced by `{command}`: one record of each kind (config up to "
            f"seed and lr), {args.jobs} jobs x the record's threads side by side. `same numbers`: status, steps, "
            "divergence, test metrics and largest gradient norm bit-identical to the record. Sweep minutes: the "
            f"records' wall seconds over {args.jobs} workers, as recorded and scaled by each kind's ratio now.\n\n"
            f"{reruns.to_markdown(index=False, floatfmt='.2f')}\n\n{sweeps.to_markdown(floatfmt='.1f')}\n")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
