"""run(cfg) -> RunResult: skip if done, seed, data, model, train, test, record, mirror."""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path

import torch

from cdyn_bench import NUMERICS_VERSION, current_stamp, record
from cdyn_bench.atomic import write_atomic
from cdyn_bench.checkpoint import CHECKPOINT, Checkpointer
from cdyn_bench.config import RunConfig
from cdyn_bench.data import TaskData, to_tensors
from cdyn_bench.display import LiveDisplay, console
from cdyn_bench.memory import check_memory
from cdyn_bench.mixer.introspect import extremes_batch, noise_mass
from cdyn_bench.model import LanguageModel
from cdyn_bench.principles import card_record
from cdyn_bench.record import RunResult
from cdyn_bench.sweep import available_cores
from cdyn_bench.tracking import mirror_to_wandb
from cdyn_bench.tasks import CHARACTER_LEVEL
from cdyn_bench.tasks.roles import NOISE, QUERY, has_noise, token_roles
from cdyn_bench.train import evaluate, train


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Monitor:
    """Forwards training progress to the live display and keeps progress.json current."""

    def __init__(self, display: LiveDisplay, path: Path, base: dict):
        self.display, self.path, self.base = display, path, base

    def update(self, step: int, train_loss: float, val_accuracy: float | None, tokens_per_s: float) -> None:
        self.display.update(step, train_loss, val_accuracy, tokens_per_s)
        if val_accuracy is not None:
            record.write_json(self.path, {**self.base, "status": "running", "step": step,
                                          "train_loss": train_loss, "val_accuracy": val_accuracy})


def check_device_memory(cfg: RunConfig, device: torch.device, data: TaskData) -> None:
    """On CUDA, the memory estimate against the GPU's free memory (the host's was checked with the config)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        check_memory(cfg, data.seq_len, data.vocab_size, available=free, where=f"{device}")


SELECTIVITY_SEQUENCES = 64


def save_weights(model: LanguageModel, path: Path) -> None:
    """The model's state_dict, written atomically (torch.save to a temp file, then renamed)."""
    write_atomic(path, lambda f: torch.save(model.state_dict(), f), mode="wb")


def selectivity(model: LanguageModel, data: TaskData, cfg: RunConfig, device: torch.device) -> dict[str, float]:
    """For tasks with noise tokens: the share of coefficient mass that query rows put on noise, from the
    trained model's coefficients on the first test sequences (mean over layers, and the last layer)."""
    if not has_noise(cfg.task.name, cfg.task.params):
        return {}
    k = min(SELECTIVITY_SEQUENCES, 8 * extremes_batch(model, data.seq_len))
    inputs, targets = data.test.inputs[:k], data.test.targets[:k]
    roles = torch.from_numpy(token_roles(cfg.task.name, cfg.task.params, inputs, targets)).to(device)
    shares = noise_mass(model, to_tensors(inputs, device=device)[0], roles, NOISE, QUERY)
    return {"noise_mass": sum(shares) / len(shares), "noise_mass_last_layer": shares[-1]}


def copy_reusable(cfg: RunConfig, config: dict, root: Path, directory: Path, digest: str) -> RunResult | None:
    """The finished record of the same config in one of cfg.reuse's folders, copied to `directory` with this run's
    place and output keys (and its weights, when this run saves them; a donor without them is not used)."""
    donor = record.reusable(cfg.reuse, directory.name, digest)
    if donor is None:
        return None
    source = Path(donor.path).parent
    weights = [source / name for name in record.WEIGHTS.values()] if cfg.train.save_weights else []
    if not all(w.exists() for w in weights):
        return None
    record.check_writable(directory, "out_dir")
    for w in weights:
        shutil.copy2(w, directory / w.name)
    copy = dataclasses.replace(donor, config=config, run_dir=directory.relative_to(root.parent).as_posix(),
                               path=str(directory / record.RESULT), reused_from=source.as_posix())
    record.write_result(copy, directory)
    (directory / record.PROGRESS).unlink(missing_ok=True)  # of an interrupted attempt: the record stands now
    return dataclasses.replace(copy, skipped=True)


def test_metrics(test: dict[str, float], status: str) -> dict[str, float]:
    """The test accuracies and loss; a diverged run has none (null: tables count its accuracy 0) and keeps the last
    finite model's as test_accuracy_before_divergence, so the raw record cannot be read as a success."""
    if status == "diverged":
        return {"test_accuracy": math.nan, "test_macro_accuracy": math.nan, "test_last_accuracy": math.nan,
                "test_loss": math.nan, "test_accuracy_before_divergence": test["accuracy"]}
    return {"test_accuracy": test["accuracy"], "test_macro_accuracy": test["macro_accuracy"],
            "test_last_accuracy": test["last_accuracy"], "test_loss": test["loss"]}


def bits_per_char(metrics: dict[str, float]) -> dict[str, float]:
    """A character-level task's losses in bits per character (tasks.CHARACTER_LEVEL): loss / ln 2."""
    return {k.replace("_loss", "_bits_per_char"): v / math.log(2) for k, v in metrics.items()
            if k in ("test_loss", "val_loss")}


def run(cfg: RunConfig, root: Path) -> RunResult:
    """Train and evaluate one checked config under `root`, or return its finished record when it exists.

    `root` is <out_dir>/runs or <sweep dir>/cells; the record's run_dir is stored relative to its parent.
    """
    start = time.perf_counter()
    config = dataclasses.asdict(cfg)
    digest = record.config_hash(cfg.identity())
    directory = record.run_dir(root, config, digest)
    if not cfg.force and (done := record.finished(directory, digest)) is not None:
        return dataclasses.replace(done, skipped=True)
    if not cfg.force and (copy := copy_reusable(cfg, config, root, directory, digest)) is not None:
        return copy
    record.check_writable(directory, "out_dir")

    threads = cfg.train.num_threads or available_cores()
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    data = TaskData(cfg.task, cfg.seed, cfg.train.batch_size)
    check_device_memory(cfg, device, data)
    model = LanguageModel(cfg.model, data.vocab_size, readout=cfg.task.readout).to(device)
    if cfg.train.save_weights:
        save_weights(model, directory / record.WEIGHTS["init"])
    monitor_base = {"config_hash": digest, "seed": cfg.seed}
    forms = [block.mixer.form for block in model.blocks]
    saver = Checkpointer(directory / CHECKPOINT, cfg.train.checkpoint_every, f"{digest}/{current_stamp(forms)}")
    with LiveDisplay(directory.name, cfg.train.max_steps, cfg.progress) as display, saver:
        outcome = train(model, data, cfg.train, device, Monitor(display, directory / record.PROGRESS, monitor_base),
                        saver)
    if saver.resumed_at is not None:
        console.print(f"continued from its checkpoint at step {saver.resumed_at}")
    if outcome.status == "interrupted":
        console.print(f"interrupted by signal {saver.stop_requested} at step {outcome.steps}: training state saved to "
                      f"{saver.path}; run the same command to resume")
        return RunResult(config=config, config_hash=digest, status="interrupted", seed=cfg.seed, steps=outcome.steps,
                         run_dir=directory.relative_to(root.parent).as_posix(), path=str(saver.path))
    if outcome.status == "diverged":
        at = outcome.divergence
        console.print(f"[bold red]diverged[/] at step {outcome.diverged_at}: non-finite loss or gradient "
                      f"(gradient norm {at['grad_norm']:.3g}, largest log|alpha| {at['log_alpha_max']:.3g}, "
                      f"largest log eta {at['log_eta_max']:.3g})")

    test = evaluate(model, data.test, cfg.train.eval_batch_size, device)
    test.update(selectivity(model, data, cfg, device))
    last = outcome.history[-1] if outcome.history else {}
    result = RunResult(
        config=config, config_hash=digest, status=outcome.status, seed=cfg.seed,
        metrics={**test_metrics(test, outcome.status),
                 **{k: test[k] for k in ("noise_mass", "noise_mass_last_layer") if k in test},
                 "val_accuracy": last.get("val_accuracy", float("nan")),
                 "val_loss": last.get("val_loss", float("nan")),
                 "train_loss": last.get("train_loss", float("nan"))},
        history=outcome.history, steps=outcome.steps, diverged_at=outcome.diverged_at, stopped=outcome.stopped,
        grad_norm_max=outcome.grad_norm_max, divergence=outcome.divergence, principles=card_record(cfg),
        wall_seconds=time.perf_counter() - start, train_seconds=outcome.train_seconds,
        eval_seconds=outcome.eval_seconds,
        tokens_per_s=outcome.tokens / max(outcome.train_seconds, 1e-9),
        n_params=sum(p.numel() for p in model.parameters()), state_size=model.state_size(data.seq_len),
        forms=forms, form_versions=record.form_versions(forms),
        leaked_test_sequences=data.leaked, device=str(device), num_threads=threads,
        numerics_version=NUMERICS_VERSION, versions=record.versions(),
        run_dir=directory.relative_to(root.parent).as_posix(), path=str(directory / record.RESULT),
    )
    if cfg.task.name in CHARACTER_LEVEL:
        result.metrics.update(bits_per_char(result.metrics))
    if cfg.train.save_weights:
        save_weights(model, directory / record.WEIGHTS["trained"])
    record.write_result(result, directory)
    (directory / record.PROGRESS).unlink(missing_ok=True)
    saver.remove()
    mirror_to_wandb(result, cfg.wandb, cfg.sweep_name, directory)
    return result
