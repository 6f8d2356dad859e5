"""The training loop: AdamW with warm-up and cosine decay, periodic validation, early stop, divergence."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cdyn_bench.checkpoint import Checkpointer
from cdyn_bench.config import TrainConfig
from cdyn_bench.data import TaskData, to_tensors
from cdyn_bench.metrics import accuracy
from cdyn_bench.mixer.introspect import extremes, extremes_batch
from cdyn_bench.tasks import Examples


class Display(Protocol):
    def update(self, step: int, train_loss: float, val_accuracy: float | None, tokens_per_s: float) -> None: ...


@dataclass
class TrainOutcome:
    status: str  # "completed", "diverged" or "interrupted" (a stop signal; the checkpoint holds the state)
    steps: int
    history: list[dict] = field(default_factory=list)
    diverged_at: int | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0  # of train_seconds, the validation passes (and their extremes probe) inside the loop
    tokens: int = 0
    grad_norm_max: float = 0.0
    divergence: dict | None = None
    stopped: str = "cap"  # why training ended: cap, target, plateau, diverged or interrupted


def schedule(cfg: TrainConfig):
    """Multiplier on lr: linear warm-up over warmup_steps, then a cosine from 1 to final_lr / lr at max_steps."""
    floor = cfg.final_lr / cfg.lr

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def decays(param: nn.Parameter, rule: str) -> bool:
    """Whether weight decay applies: every parameter (rule 'all', MAD), or matrices not marked as
    evolution parameters (rule 'matrices'; cdyn_bench.mixer.gates.no_weight_decay)."""
    if rule == "all":
        return True
    return param.dim() >= 2 and not getattr(param, "_no_weight_decay", False)


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> dict[str, list[str]]:
    """Names of the parameters with and without weight decay: {'decay': [...], 'no_decay': [...]}."""
    groups: dict[str, list[str]] = {"decay": [], "no_decay": []}
    for name, param in model.named_parameters():
        groups["decay" if decays(param, cfg.weight_decay_on) else "no_decay"].append(name)
    return groups


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with the config's betas; weight decay on the `parameter_groups` 'decay' group only."""
    params = dict(model.named_parameters())
    names = parameter_groups(model, cfg)
    groups = [{"params": [params[n] for n in names["decay"]], "weight_decay": cfg.weight_decay},
              {"params": [params[n] for n in names["no_decay"]], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def loss_on(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at the positions with a target; only those positions reach the LM head."""
    select = targets != -100
    return F.cross_entropy(model(inputs, select), targets[select])


@torch.no_grad()
def evaluate(model: nn.Module, examples: Examples, batch_size: int, device: torch.device) -> dict[str, float]:
    """Micro and macro accuracy over the scored positions of a split; last_accuracy, the accuracy at each
    sequence's last scored position (a state-tracking task's final state, MQAR's last query); loss, the mean
    cross-entropy (nats) per scored position."""
    model.eval()
    preds, targets, lasts, loss = [], [], [], 0.0
    for start in range(0, len(examples.inputs), batch_size):
        inputs, target = to_tensors(
            examples.inputs[start:start + batch_size], examples.targets[start:start + batch_size], device=device
        )
        select = target != -100
        logits = model(inputs, select)
        loss += F.cross_entropy(logits.double(), target[select], reduction="sum").item()
        preds.append(logits.argmax(-1))
        targets.append(target[select])
        lasts.append((select & (select.flip(-1).cumsum(-1).flip(-1) == 1))[select])
    model.train()
    preds, targets, lasts = torch.cat(preds), torch.cat(targets), torch.cat(lasts)
    last = (preds[lasts] == targets[lasts]).float().mean().item() if lasts.any() else float("nan")
    return {**accuracy(preds, targets), "last_accuracy": last, "loss": loss / max(1, targets.numel())}


# JSON has no infinity: a diagnostic that overflowed is recorded as +-INFINITY (nan stays nan -> null).
INFINITY = 1e308


def as_json_numbers(values: dict[str, float]) -> dict[str, float]:
    """The diagnostics with +-inf written as +-INFINITY, so a record keeps that a value overflowed."""
    return {k: math.copysign(INFINITY, v) if isinstance(v, float) and math.isinf(v) else v for k, v in values.items()}


def plateaued(history: list[dict], cfg: TrainConfig) -> bool:
    """Whether the last `patience` evaluations all stayed within plateau_delta of the best one before them."""
    vals = [row["val_accuracy"] for row in history]
    if cfg.patience == 0 or len(vals) <= cfg.patience:
        return False
    return max(vals[-cfg.patience:]) <= max(vals[:-cfg.patience]) + cfg.plateau_delta


def training_state(model, optimizer, scheduler, data: TaskData, outcome: TrainOutcome, losses: list[float],
                   window_grad_max: float, elapsed: float) -> dict:
    """Everything the loop needs to continue exactly where it is (cdyn_bench.checkpoint)."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "data": data.state_dict(), "torch_rng": torch.get_rng_state(), "losses": list(losses),
            "window_grad_max": window_grad_max, "outcome": dataclasses.asdict(outcome), "elapsed": elapsed}


def restore(state: dict, model, optimizer, scheduler, data: TaskData) -> tuple[TrainOutcome, list[float], float, float]:
    """Load a training_state; (the outcome so far, the loss window, its largest gradient norm, seconds trained)."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    data.load_state_dict(state["data"])
    torch.set_rng_state(state["torch_rng"])
    return TrainOutcome(**state["outcome"]), state["losses"], state["window_grad_max"], state["elapsed"]


def train(model: nn.Module, data: TaskData, cfg: TrainConfig, device: torch.device,
          display: Display | None = None, checkpoint: Checkpointer | None = None) -> TrainOutcome:
    """Train until max_steps, a validation accuracy >= target_accuracy, a plateau (cfg.patience), or a non-finite loss.

    Every evaluation records, besides accuracy and loss, what would explain a divergence: the
    largest gradient norm (before clipping) since the last evaluation, and the largest log |alpha_ij|,
    |score_ij|, log eta_i and |log |lambda(A_t)|| on a few validation sequences
    (cdyn_bench.mixer.introspect.extremes). A divergence records the step, the loss, the gradient
    norm and the same extremes of the model that produced it (its weights before the failed update).

    With a `checkpoint`, training resumes from its saved state (the numbers then equal an uninterrupted
    run's), saves every checkpoint.every steps, and on a stop signal saves and returns status 'interrupted'.
    """
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(cfg))
    outcome = TrainOutcome(status="completed", steps=0)
    losses: list[float] = []
    window_grad_max, elapsed = 0.0, 0.0
    probe = to_tensors(data.val.inputs[:extremes_batch(model, data.val.inputs.shape[1])], device=device)[0]
    if checkpoint is not None and (state := checkpoint.load()) is not None:
        outcome, losses, window_grad_max, elapsed = restore(state, model, optimizer, scheduler, data)
    start = time.perf_counter() - elapsed
    model.train()
    # Compiled for the training steps only: evaluation batches have other shapes (each a recompile).
    forward = torch.compile(model) if cfg.compile else model
    for step in range(outcome.steps + 1, cfg.max_steps + 1):
        inputs, targets = to_tensors(*data.train_batch(), device=device)
        loss = loss_on(forward, inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
        outcome.steps, outcome.tokens = step, outcome.tokens + inputs.numel()
        norm = float(grad_norm)
        if not (torch.isfinite(loss) and math.isfinite(norm)):
            outcome.status, outcome.diverged_at, outcome.stopped = "diverged", step, "diverged"
            outcome.divergence = as_json_numbers({"step": step, "loss": float(loss.detach()), "grad_norm": norm,
                                                  **extremes(model, probe)})
            break
        window_grad_max = max(window_grad_max, norm)
        outcome.grad_norm_max = max(outcome.grad_norm_max, norm)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            elapsed = time.perf_counter() - start
            val = evaluate(model, data.val, cfg.eval_batch_size, device)
            outcome.history.append({
                "step": step, "train_loss": float(np.mean(losses)), "val_accuracy": val["accuracy"],
                "val_macro_accuracy": val["macro_accuracy"], "val_loss": val["loss"], "seconds": elapsed,
                "grad_norm_max": window_grad_max, **as_json_numbers(extremes(model, probe)),
            })
            outcome.eval_seconds += time.perf_counter() - start - elapsed
            losses, window_grad_max = [], 0.0
            if display is not None:
                display.update(step, outcome.history[-1]["train_loss"], val["accuracy"], outcome.tokens / elapsed)
            if val["accuracy"] >= cfg.target_accuracy or plateaued(outcome.history, cfg):
                outcome.stopped = "target" if val["accuracy"] >= cfg.target_accuracy else "plateau"
                break
        elif display is not None and step % 10 == 0:
            display.update(step, losses[-1], None, outcome.tokens / (time.perf_counter() - start))
        if checkpoint is not None and checkpoint.due(step) and step < cfg.max_steps:
            checkpoint.save(training_state(model, optimizer, scheduler, data, outcome, losses, window_grad_max,
                                           time.perf_counter() - start))
            if checkpoint.stop_requested is not None:
                outcome.status = outcome.stopped = "interrupted"
                break
    outcome.train_seconds = time.perf_counter() - start
    return outcome
