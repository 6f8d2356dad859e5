"""Time every task generator at its benchmark scale; write results/bench/tasks.{csv,md}."""

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cdyn_bench.tasks import IGNORE, TASKS

# Each generator at its signature defaults and MAD's training-set size; MQAR at Zoology's
# (256, 16, 8192) with its 100,000 training examples. These must each take under LIMIT_S.
DEFAULT = {name: (12_800, {}) for name in TASKS}
DEFAULT["mqar"] = (100_000, dict(vocab_size=8192, seq_len=256, num_kv_pairs=16))
# The largest setting of each task's difficulty grid (MAD's changes, Zoology's last grid point).
HARDEST = [
    ("mqar", 100_000, dict(vocab_size=8192, seq_len=512, num_kv_pairs=64)),
    ("noisy_icr", 12_800, dict(seq_len=1024)),
    ("noisy_icr", 12_800, dict(vocab_size=144, frac_noise=0.8)),
    ("icr", 12_800, dict(seq_len=1024)),
    ("fuzzy_icr", 12_800, dict(seq_len=1024)),
    ("fuzzy_icr", 12_800, dict(vocab_size=128)),
    ("selective_copy", 12_800, dict(seq_len=1024)),
    ("selective_copy", 12_800, dict(num_tokens_to_copy=96)),
    ("compression", 12_800, dict(seq_len=256)),
    ("memorization", 256, dict(vocab_size=8192)),
]
LIMIT_S = 2.0
COLUMNS = ["scale", "task", "num_examples", "params", "T", "scored_per_row", "best_s", "median_s",
           "under_limit"]


def time_task(scale: str, name: str, num_examples: int, params: dict, repeats: int) -> dict:
    seconds = []
    for seed in range(repeats):
        start = time.perf_counter()
        examples = TASKS[name](num_examples, np.random.default_rng(seed), **params)
        seconds.append(time.perf_counter() - start)
    return {
        "scale": scale,
        "task": name,
        "num_examples": num_examples,
        "params": " ".join(f"{k}={v}" for k, v in params.items()) or "defaults",
        "T": examples.inputs.shape[1],
        "scored_per_row": round(float((examples.targets != IGNORE).sum(axis=1).mean()), 2),
        "best_s": round(min(seconds), 3),
        "median_s": round(float(np.median(seconds)), 3),
        "under_limit": max(seconds) < LIMIT_S,
    }


def markdown(table: pd.DataFrame, note: str) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return f"# Task generator timings\n\n{note}\n\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args()
    rows = [time_task("default", name, *DEFAULT[name], args.repeats) for name in TASKS]
    rows += [time_task("hardest", *case, args.repeats) for case in HARDEST]
    table = pd.DataFrame(rows, columns=COLUMNS)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    note = (f"`python scripts/bench_tasks.py --repeats {args.repeats}` on {os.cpu_count()} CPUs "
            f"({platform.machine()}, Python {platform.python_version()}, NumPy {np.__version__}; "
            f"1/5/15-minute load average {load} when done); "
            f"seconds per call, a fresh seed each repeat. The default rows must be under_limit "
            f"(every repeat under {LIMIT_S} s); the hardest rows, the largest setting of each "
            f"difficulty grid, are for information.")
    print(table.to_string(index=False))
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "tasks.csv", index=False)
    (args.out / "tasks.md").write_text(markdown(table, note))


if __name__ == "__main__":
    main()
