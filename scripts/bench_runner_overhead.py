"""Runner overhead: wall time to 99% validation accuracy of `cdyn-run` vs a plain training loop.

The plain loop trains the same model on the same data streams with the same optimiser, so both
take the same steps; the ratio is what Hydra, records, the live display and W&B add.

    python scripts/bench_runner_overhead.py [--seeds 0 1 2] [--threads 2]

Writes results/bench/runner_overhead.{csv,md}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cdyn_bench.config import RunConfig
from cdyn_bench.compose import compose
from cdyn_bench.model import LanguageModel
from cdyn_bench.tasks import mqar

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"


def default_config() -> RunConfig:
    """The config `cdyn-run model=gated task=mqar` composes, so both loops train the same thing."""
    return compose("model=gated", "task=mqar")


def plain_loop(seed: int, run_cfg: RunConfig) -> tuple[float, int, float]:
    """(seconds to target on validation, steps, final validation accuracy) of a bare loop."""
    start = time.perf_counter()
    cfg = run_cfg.train
    task = run_cfg.task.params
    torch.manual_seed(seed)
    train_rng, val_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    val = mqar(run_cfg.task.num_val, val_rng, **task)
    model = LanguageModel(run_cfg.model, task["vocab_size"])
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=tuple(cfg.betas))
    total = cfg.max_steps - cfg.warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / cfg.warmup_steps if s < cfg.warmup_steps
                                              else 0.5 * (1 + np.cos(np.pi * min(1.0, (s - cfg.warmup_steps) / total))))
    acc = 0.0
    for step in range(1, cfg.max_steps + 1):
        ex = mqar(cfg.batch_size, train_rng, **task)
        x, y = torch.from_numpy(ex.inputs), torch.from_numpy(ex.targets)
        loss = F.cross_entropy(model(x, y != -100), y[y != -100])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        if step % cfg.eval_every == 0:
            with torch.no_grad():
                vx, vy = torch.from_numpy(val.inputs), torch.from_numpy(val.targets)
                acc = (model(vx, vy != -100).argmax(-1) == vy[vy != -100]).float().mean().item()
            if acc >= cfg.target_accuracy:
                break
    return time.perf_counter() - start, step, acc


def runner(seed: int, threads: int) -> tuple[float, int, float]:
    """(wall seconds of the whole command, steps, test accuracy) of `cdyn-run model=gated task=mqar`."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "cdyn-run"), "model=gated", "task=mqar", f"seed={seed}",
                        f"train.num_threads={threads}", f"out_dir={tmp}"], check=True, capture_output=True)
        seconds = time.perf_counter() - start
        (path,) = Path(tmp).glob("runs/*/result.json")
        result = json.loads(path.read_text())
    return seconds, result["steps"], result["metrics"]["test_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        plain_s, plain_steps, plain_acc = plain_loop(seed, default_config())
        run_s, run_steps, run_acc = runner(seed, args.threads)
        rows.append({"seed": seed, "plain_seconds": plain_s, "plain_steps": plain_steps, "plain_val_accuracy": plain_acc,
                     "cdyn_run_seconds": run_s, "cdyn_run_steps": run_steps, "cdyn_run_test_accuracy": run_acc,
                     "ratio": run_s / plain_s})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows).round(4)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / "runner_overhead.csv", index=False)
    (OUT / "runner_overhead.md").write_text(table.to_markdown(index=False) + "\n")
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
