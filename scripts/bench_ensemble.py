"""Measure whether training the seeds of one cell together, as one vmapped ensemble, pays on this machine.

For each preset at the MQAR defaults, K models (seeds 0..K-1) take one training step each in two ways,
on one thread (as each sweep worker runs):
- in turn: cdyn-run's own step per model (loss on the scored positions, backward, clip, AdamW);
- together: the K parameter sets stacked (torch.func.stack_module_state), forward and gradient of all
  K under torch.func.vmap, per-model clipping, one AdamW over the stacked tensors. vmap cannot select a
  different number of scored positions per model, so the ensemble computes the logits of every
  position and masks the loss (the same loss; more work in the LM head and the MLP).
Both are timed as the fastest of the repeats after a warm-up; the ratio says whether an ensemble runner
would pay. Writes results/bench/ensemble.{csv,md}.

    python scripts/bench_ensemble.py --presets softmax gated --k 3
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from cdyn_bench.compose import compose
from cdyn_bench.data import TaskData, to_tensors
from cdyn_bench.model import LanguageModel
from cdyn_bench.train import loss_on, make_optimizer

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"


def fastest(step, repeats: int) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(preset: str, k: int, repeats: int) -> dict:
    cfg = compose(f"model={preset}", "task=mqar", "wandb=disabled")
    models, optimizers, batches = [], [], []
    for seed in range(k):
        torch.manual_seed(seed)
        data = TaskData(cfg.task, seed, cfg.train.batch_size)
        models.append(LanguageModel(cfg.model, data.vocab_size, readout=cfg.task.readout))
        optimizers.append(make_optimizer(models[-1], cfg.train))
        batches.append(to_tensors(*data.train_batch(), device=torch.device("cpu")))

    def in_turn() -> None:
        for model, optimizer, (inputs, targets) in zip(models, optimizers, batches):
            loss = loss_on(model, inputs, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            optimizer.step()

    params, buffers = torch.func.stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    inputs = torch.stack([b[0] for b in batches])
    targets = torch.stack([b[1] for b in batches])

    def loss_fn(p, b, x, y):
        logits = torch.func.functional_call(base, (p, b), (x,))
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)

    grads_of = torch.func.vmap(torch.func.grad(loss_fn))
    leaves = [p.detach().requires_grad_() for p in params.values()]
    stacked = dict(zip(params, leaves))
    optimizer = torch.optim.AdamW(leaves, lr=cfg.train.lr, betas=tuple(cfg.train.betas),
                                  weight_decay=cfg.train.weight_decay)

    def together() -> None:
        grads = grads_of(stacked, buffers, inputs, targets)
        norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()  # (K,)
        scale = (cfg.train.grad_clip / (norms + 1e-6)).clamp(max=1.0)
        for name, leaf in stacked.items():
            leaf.grad = grads[name] * scale.view(-1, *[1] * (leaf.dim() - 1))
        optimizer.step()

    row = {"preset": preset, "k": k, "in_turn_ms": 1e3 * fastest(in_turn, repeats)}
    try:
        row["together_ms"] = 1e3 * fastest(together, repeats)
    except Exception as error:  # a preset whose ops have no vmap rule is reported as such
        row["together_ms"], row["note"] = float("nan"), f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
    row["together / in_turn"] = row["together_ms"] / row["in_turn_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["softmax", "gated", "mamba2", "deltanet"])
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--conditions", default="", help="what else the machine was doing, for the table's header")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(p, args.k, args.repeats) for p in args.presets]
    df = pd.DataFrame(rows)
    df.round(3).to_csv(OUT / "ensemble.csv", index=False)
    lines = ["# Seeds of one cell as one vmapped ensemble, against one after another", "",
             f"{args.k} models, one training step each at the MQAR defaults (batch 64 x 64), {args.threads} thread(s), "
             f"{platform.machine()}, fastest of {args.repeats} repeats. {args.conditions} "
             "Produced by `scripts/bench_ensemble.py`.", "",
             df.round(3).to_markdown(index=False), ""]
    (OUT / "ensemble.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
