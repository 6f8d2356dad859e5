"""Does `train.compile` (torch.compile, inductor on CPU) pay? Compile time, step time, and the break-even run length.

For each preset and size (bench_train's SIZES), cdyn-run's model, loss and AdamW take training steps on one batch
in a fresh interpreter, three ways: eager; compiled with an empty inductor cache (a fresh machine's first run);
compiled again with the cache the previous one filled (every later run of the same shapes). `first step s` is the
first compiled step (tracing, code generation, the C++ build or the cache load, and the step); `ms per step` the
median of the steps after the warm-up. A compiled run of N steps saves (eager - compiled) ms a step and pays its
first step's extra seconds once: `pays at 500` / `pays at 1500` say whether it is ahead after a 500- or a
1,500-step run (the findings' and findings_long's caps), with the cache cold and warm. Validation batches are not
compiled (cdyn_bench.train), so they are left out.

    python scripts/bench_compile.py                               # writes results/bench/compile.{csv,md}
    python scripts/bench_compile.py --presets softmax s6 --sizes mqar --steps 20 --name compile_s6
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import OUT, PRESETS, SIZES, setup, training_step  # noqa: E402

DEFAULT_PRESETS = ["softmax", "gated", "deltanet", "gated_deltanet", "s6", "gla", "mamba2", "mlstm"]
MODES = ("eager", "cold", "warm")


def measure(preset: str, size: str, mode: str, steps: int, threads: int) -> dict:
    """One interpreter's measurement (the cache folder comes from the environment)."""
    import torch

    from cdyn_bench.compose import compose
    from cdyn_bench.data import to_tensors

    torch.set_num_threads(threads)
    cfg = compose(f"model={preset}", *SIZES[size], "task.num_val=500", "wandb=disabled")
    data, model, optimizer = setup(cfg)
    forward = model if mode == "eager" else torch.compile(model)
    inputs, targets = to_tensors(*data.train_batch(), device=torch.device("cpu"))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        # training_step's loss comes from its model argument; the parameters and optimiser are the eager model's.
        training_step(cfg, forward, optimizer, inputs, targets)
        times.append(time.perf_counter() - start)
    warm = times[3:]
    return {"preset": preset, "size": size, "mode": mode, "first_step_s": times[0],
            "ms_per_step": 1e3 * statistics.median(warm)}


def run_worker(preset: str, size: str, mode: str, args: argparse.Namespace, cache: Path) -> dict:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache), TORCHINDUCTOR_FX_GRAPH_CACHE="1")
    command = [sys.executable, __file__, "--worker", preset, size, mode, "--steps", str(args.steps),
               "--threads", str(args.threads)]
    out = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.splitlines()[-1])


def summarise(rows: list[dict]):
    """Per cell: eager and compiled step times, and each compiled run's first step, break-even and verdicts."""
    import pandas as pd

    df = pd.DataFrame(rows)
    wide = df.pivot_table(index=["size", "preset"], columns="mode", values=["first_step_s", "ms_per_step"], sort=False)
    out = pd.DataFrame({"eager ms": wide[("ms_per_step", "eager")]})
    for cache in ("cold", "warm"):
        out[f"compiled ms ({cache})"] = wide[("ms_per_step", cache)]
        saved = (out["eager ms"] - out[f"compiled ms ({cache})"]) / 1e3
        extra = wide[("first_step_s", cache)] - wide[("first_step_s", "eager")]
        out[f"first step s ({cache})"] = wide[("first_step_s", cache)]
        out[f"break-even steps ({cache})"] = (extra / saved).where(saved > 0)
        for n in (500, 1500):
            out[f"pays at {n} ({cache})"] = (saved * n > extra).map({True: "yes", False: "no"})
    return out


def write(rows: list[dict], args: argparse.Namespace) -> None:
    import pandas as pd

    OUT.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).round(4).to_csv(OUT / f"{args.name}.csv", index=False)
    table = summarise(rows)
    import torch

    lines = [
        "# torch.compile for the training step: does it pay?",
        "",
        f"Each cell in a fresh interpreter, {args.steps} steps on one batch, fp32, {args.threads} threads, "
        f"{platform.machine()}, torch {torch.__version__}; eager, compiled with an empty inductor cache (cold) and "
        "compiled again with that cache (warm). `ms`: median step after 3 warm-up steps, each run its own; "
        "`first step s`: the first step, compilation included; `break-even steps`: the steps after which "
        "the compiled run is ahead. Produced by `python " + " ".join(["scripts/bench_compile.py", *sys.argv[1:]]) + "`.",
        "",
        table.round({"eager ms": 1, "compiled ms (cold)": 1, "compiled ms (warm)": 1, "first step s (cold)": 1,
                     "first step s (warm)": 1, "break-even steps (cold)": 0, "break-even steps (warm)": 0})
             .to_markdown(),
        "",
    ]
    (OUT / f"{args.name}.md").write_text("\n".join(lines))
    print(f"wrote {OUT / args.name}.csv and .md", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS, choices=PRESETS)
    parser.add_argument("--sizes", nargs="+", default=["mqar", "mqar_256"], choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=30, help="training steps per cell and mode (at least 5)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="compile", help="writes results/bench/NAME.{csv,md}")
    parser.add_argument("--worker", nargs=3, metavar=("PRESET", "SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 5:
        parser.error(f"--steps {args.steps}: need at least 5 (3 warm-up steps, then the timed ones)")
    if args.worker:
        print(json.dumps(measure(*args.worker, args.steps, args.threads)))
        return
    rows = []
    for size in args.sizes:
        for preset in args.presets:
            with tempfile.TemporaryDirectory() as cache:  # cold, then warm from what cold left
                for mode in MODES:
                    rows.append(run_worker(preset, size, mode, args, Path(cache)))
                    print(json.dumps(rows[-1]), file=sys.stderr)
    write(rows, args)


if __name__ == "__main__":
    main()
