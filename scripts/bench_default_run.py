"""Time the README's main job, `cdyn-run model=gated task=mqar`, on the code at a baseline revision and now.

The two run in turn (baseline, current, baseline, ...) in fresh folders, with W&B off, so a slow
spell of the machine hits both alike; each run's wall time, steps and test accuracy come from its
record. Writes results/bench/default_run.{csv,md}.

    python scripts/bench_default_run.py --baseline 7c06435 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from cdyn_bench.revision import checkout

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"

COMMAND = ["model=gated", "task=mqar", "progress=false", "wandb=disabled"]


def timed_run(site: Path | None, folder: Path, seed: int) -> dict:
    """One default run in `folder`, importing cdyn_bench from `site` (None: this checkout)."""
    folder.mkdir(parents=True)
    env = dict(os.environ, CDYN_BENCH_CACHE="off", **({"PYTHONPATH": str(site)} if site else {}))
    code = "import sys; from cdyn_bench.cli import run_main; sys.argv[0] = 'cdyn-run'; run_main()"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *COMMAND, f"seed={seed}"], cwd=folder, env=env, check=True,
                   capture_output=True)
    seconds = time.perf_counter() - start
    record = json.loads(next(folder.rglob("result.json")).read_text())
    return {"command_seconds": seconds, "wall_seconds": record["wall_seconds"], "steps": record["steps"],
            "tokens_per_s": record["tokens_per_s"], "test_accuracy": record["metrics"]["test_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision of the 'before' code")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        site = checkout(args.baseline, Path(tmp), OUT.parents[1])
        for i in range(args.rounds):
            for code, path in (("before", site), ("after", None)):
                rows.append({"code": code, "round": i, **timed_run(path, Path(tmp) / f"{code}{i}", args.seed)})
                print(json.dumps(rows[-1]), file=sys.stderr)
    df = pd.DataFrame(rows)
    df.round(4).to_csv(OUT / "default_run.csv", index=False)
    summary = df.groupby("code", sort=False).agg(
        wall_seconds_min=("wall_seconds", "min"), wall_seconds_mean=("wall_seconds", "mean"),
        steps=("steps", "first"), tokens_per_s_max=("tokens_per_s", "max"), test_accuracy=("test_accuracy", "first"))
    ratio = summary.loc["after", "wall_seconds_min"] / summary.loc["before", "wall_seconds_min"]
    (OUT / "default_run.md").write_text("\n".join([
        "# The default run, before and after",
        "",
        f"`cdyn-run {' '.join(COMMAND)} seed={args.seed}` on 2 cores, {args.rounds} rounds, before = "
        f"{args.baseline} and after = this commit in turn. Produced by `scripts/bench_default_run.py "
        f"--baseline {args.baseline} --rounds {args.rounds}`.",
        "",
        summary.round(4).to_markdown(),
        "",
        f"after / before (fastest wall time of each): {ratio:.2f}",
        "",
        "Every run:",
        "",
        df.round(4).to_markdown(index=False),
        "",
    ]))


if __name__ == "__main__":
    main()
