"""Training throughput as cdyn-run delivers it: every preset trained by the runner itself at each experiment size.

`scripts/bench_train.py` times one step in isolation (the fastest of its repeats). A run also draws a fresh
batch each step, steps the schedule, keeps its bookkeeping and evaluates; this script measures what a user
meets. Each preset at each size (bench_train's SIZES) is trained by `cdyn_bench.run.run` for --steps steps
with no early stop, all presets one after another in one process, and its record gives the training seconds,
of which `eval_seconds` went to the validation passes. The step as the runner runs it is
(train_seconds - eval_seconds) / steps; `ratio` is that over softmax's at the same size (the same as the
ratio of softmax's training tokens/s, evaluation left out, to the preset's). `eval %` is the share of the
loop the validation passes took at the size's own eval_every.

    python scripts/bench_runs.py                      # writes results/bench/runs.{csv,md}
    python scripts/bench_runs.py --presets softmax s6 --sizes mqar_256 --name runs_s6
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import OUT, PRESETS, SIZES, over_softmax, preset_report  # noqa: E402

from cdyn_bench.compose import compose  # noqa: E402
from cdyn_bench.run import run  # noqa: E402


def measure(presets: list[str], sizes: list[str], steps: int, threads: int, out_dir: Path) -> pd.DataFrame:
    rows = []
    for size in sizes:
        for preset in presets:
            cfg = compose(f"model={preset}", *SIZES[size], f"train.max_steps={steps}", "train.target_accuracy=2",
                          "train.patience=0", f"train.num_threads={threads}", "progress=false", "wandb=disabled")
            result = run(cfg, out_dir)
            step_s = (result.train_seconds - result.eval_seconds) / result.steps
            tokens = result.tokens_per_s * result.train_seconds
            rows.append({"size": size, "preset": preset, "steps": result.steps, "train_s": result.train_seconds,
                         "eval_s": result.eval_seconds, "ms_per_step": 1e3 * step_s,
                         "tokens_per_s": tokens / (result.train_seconds - result.eval_seconds),
                         "eval_pct": 100 * result.eval_seconds / result.train_seconds,
                         "eval_every": cfg.train.eval_every})
            print(f"{size:10s} {preset:16s} {rows[-1]['ms_per_step']:8.1f} ms a step", file=sys.stderr)
    df = pd.DataFrame(rows)
    df["ratio"] = over_softmax(df, "ms_per_step")
    return df


def write(df: pd.DataFrame, args: argparse.Namespace) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_csv(OUT / f"{args.name}.csv", index=False)
    ratios = df.pivot(index="preset", columns="size", values="ratio")[list(dict.fromkeys(df["size"]))]
    text = (f"Each preset trained by the runner for {args.steps} steps (no early stop), all presets one after another "
            f"in one process, fp32, {args.threads} threads, {platform.machine()}; `ms_per_step` = (train_seconds - "
            "eval_seconds) / steps from its record (fresh batches, schedule and bookkeeping included, validation "
            "passes left out); `ratio` = that over softmax's at the same size; `eval %` = the validation passes' share "
            "of the loop at the size's eval_every. Produced by `python "
            + " ".join(["scripts/bench_runs.py", *sys.argv[1:]]) + "`.")
    rows = df.round({"train_s": 1, "eval_s": 1, "ms_per_step": 1, "tokens_per_s": 0, "eval_pct": 1, "ratio": 2})
    preset_report(OUT / f"{args.name}.md", "Training through cdyn-run: every preset at the experiment sizes", text,
                  "Step time over softmax's", ratios, "Every run", rows)
    print(f"wrote {OUT / args.name}.csv and .md", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--name", default="runs", help="writes results/bench/NAME.{csv,md}")
    args = parser.parse_args()
    if "softmax" not in args.presets:
        parser.error("--presets must include softmax (the ratios are to it)")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        write(measure(args.presets, args.sizes, args.steps, args.threads, Path(tmp) / "runs"), args)


if __name__ == "__main__":
    main()
