"""Task data for a run: checked task config, disjoint train/validation/test splits, torch batches.

Splits come from separate seed streams, np.random.default_rng([seed, split id]), so validation and
test never share a stream with training; what overlap chance still leaves is counted (the
leakage check). A split whose generation takes longer than CACHE_MIN_SECONDS is stored as .npz
under $CDYN_BENCH_CACHE (default ~/.cache/cdyn-bench; 'off' disables), keyed by a sha256 of
the task, its parameters, the split, the seed, the size and the generators' source.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cdyn_bench import tasks
from cdyn_bench.registry import ConfigError, check_choice, lookup
from cdyn_bench.tasks import IGNORE, TASKS, Examples

LOSS_ON = ("scored", "all")
READOUTS = ("lm", "last_position")
DATA_KEYS = ("name", "num_train", "num_val", "num_test", "loss_on", "readout")
# Each split draws from its own seed stream: [run seed, split id]; "order" shuffles a fixed train set.
SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "order": 3}
CACHE_MIN_SECONDS = 1.0


@dataclass
class TaskConfig:
    """A task by registry name, the split sizes, the loss positions and the generator's parameters.

    num_train: size of a fixed training set, or 0 for fresh examples at every step.
    loss_on: 'scored' trains on the scored positions only; 'all' on the task's training targets.
    readout: 'lm' reads each position's own hidden state (causal LM); 'last_position' decodes
    every position from the last one (MAD's auto-encoder, for compression). See cdyn_bench.model.
    """

    name: str
    num_train: int = 0
    num_val: int = 500
    num_test: int = 1000
    loss_on: str = "scored"
    readout: str = "lm"
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskConfig:
        d = dict(d)
        if "name" not in d:
            raise ConfigError("task.name is missing: choose a task, e.g. task=mqar")
        generator = lookup(TASKS, "task", d["name"])
        data_keys = {k: d.pop(k) for k in DATA_KEYS if k in d}
        cfg = cls(**data_keys, params=check_params(generator, d))
        cfg.check()
        check_readout(cfg.readout, cfg.generate(16, np.random.default_rng(0)))
        return cfg

    def check(self) -> None:
        check_choice("task.loss_on", self.loss_on, LOSS_ON)
        check_choice("task.readout", self.readout, READOUTS)
        for key in ("num_train", "num_val", "num_test"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "num_train" else 1):
                raise ConfigError(f"task.{key}={value!r}: must be an integer >= {0 if key == 'num_train' else 1}")

    def generate(self, num_examples: int, rng: np.random.Generator) -> Examples:
        try:
            return TASKS[self.name](num_examples, rng, **self.params)
        except ValueError as err:
            raise ConfigError(f"task.{err}") from None


def check_params(generator: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Check keys and types of `params` against the generator's keyword parameters."""
    signature = {
        name: p for name, p in inspect.signature(generator).parameters.items() if p.kind is p.KEYWORD_ONLY
    }
    for key, value in params.items():
        if key not in signature:
            raise ConfigError(f"task.{key}: unknown key for this task. Allowed: {', '.join(signature)}")
        kind = signature[key].annotation
        kind = {"int": int, "float": float, "bool": bool}.get(kind, kind)
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok, params[key] = True, float(value)
        if not ok:
            raise ConfigError(f"task.{key}={value!r}: must be of type {kind.__name__}")
    return params


def check_readout(readout: str, examples: Examples) -> None:
    """Refuse a read-out that sees the answer.

    A causal LM reads the input token at the position it predicts, so targets that are that token
    are given away (compression with readout=lm). The last-position read-out sees the whole
    sequence, so it is fair only for reconstruction: every scored target is its position's input.
    """
    scored = examples.targets != IGNORE
    own = float((examples.targets == examples.inputs)[scored].mean()) if scored.any() else 0.0
    if readout == "lm" and own > 0.5:
        raise ConfigError(f"task.readout=lm: {own:.0%} of scored targets are the input token at their own "
                          "position, which a causal LM reads; use task.readout=last_position")
    if readout == "last_position" and own < 1.0:
        raise ConfigError("task.readout=last_position: the last position sees the whole sequence, so only "
                          "reconstruction tasks (targets = inputs, e.g. compression) may use it; use task.readout=lm")


def split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, SPLIT_IDS[split]])


def cache_dir() -> Path | None:
    """$CDYN_BENCH_CACHE/tasks (default ~/.cache/cdyn-bench/tasks), or None when it is 'off'."""
    root = os.environ.get("CDYN_BENCH_CACHE") or str(Path.home() / ".cache" / "cdyn-bench")
    return None if root == "off" else Path(root) / "tasks"


def generators_digest() -> str:
    """sha256 of the generators' source, so an edited generator never reads an old cache entry."""
    sources = sorted(Path(inspect.getfile(tasks)).parent.glob("*.py"))
    return hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()


def cache_key(cfg: TaskConfig, split: str, seed: int, num: int) -> str:
    identity = {"task": cfg.name, "params": cfg.params, "split": split, "seed": seed, "num": num,
                "source": generators_digest()}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def load_or_generate(cfg: TaskConfig, split: str, seed: int, num: int) -> Examples:
    """`num` examples of one split: from the cache, or generated (and cached if that was slow)."""
    folder = cache_dir()
    path = None if folder is None else folder / f"{cfg.name}-{cache_key(cfg, split, seed, num)[:32]}.npz"
    if path is not None and path.exists():
        try:
            with np.load(path) as f:
                return Examples(f["inputs"], f["targets"], f["train_targets"])
        except (OSError, ValueError, KeyError):
            # A corrupt or stale cache entry is regenerated (and rewritten) below.
            path.unlink(missing_ok=True)
    start = time.perf_counter()
    examples = cfg.generate(num, split_rng(seed, split))
    if path is not None and time.perf_counter() - start > CACHE_MIN_SECONDS:
        write_npz(path, examples)
    return examples


def write_npz(path: Path, examples: Examples) -> None:
    """Atomic .npz write (temp file + rename); a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, inputs=examples.inputs, targets=examples.targets, train_targets=examples.train_targets)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


class LeakCheck:
    """Counts test sequences that also occur among the training sequences seen so far."""

    def __init__(self, test_inputs: np.ndarray):
        self.unseen = Counter(row.tobytes() for row in test_inputs)
        self.count = 0

    def add(self, train_inputs: np.ndarray) -> None:
        for row in train_inputs:
            self.count += self.unseen.pop(row.tobytes(), 0)


class TaskData:
    """Validation and test sets, and training batches (from a fixed set or freshly drawn)."""

    def __init__(self, cfg: TaskConfig, seed: int, batch_size: int):
        self.cfg, self.batch_size = cfg, batch_size
        self.val = load_or_generate(cfg, "val", seed, cfg.num_val)
        self.test = load_or_generate(cfg, "test", seed, cfg.num_test)
        self.train = load_or_generate(cfg, "train", seed, cfg.num_train) if cfg.num_train else None
        self.fresh, self.shuffle = split_rng(seed, "train"), split_rng(seed, "order")
        self.order = np.empty(0, dtype=np.int64)
        self.vocab_size = int(cfg.params.get("vocab_size", max_token(self.val, self.test) + 1))
        self.seq_len = self.val.inputs.shape[1]
        self.leak = LeakCheck(self.test.inputs)
        if self.train is not None:
            self.leak.add(self.train.inputs)

    @property
    def leaked(self) -> int:
        """How many test sequences occur in the training data so far (the fixed set, or all batches)."""
        return self.leak.count

    def train_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, loss targets) of one training batch."""
        if self.train is None:
            ex = self.cfg.generate(self.batch_size, self.fresh)
            self.leak.add(ex.inputs)
        else:
            idx = self.next_indices()
            ex = Examples(self.train.inputs[idx], self.train.targets[idx], self.train.train_targets[idx])
        return ex.inputs, (ex.targets if self.cfg.loss_on == "scored" else ex.train_targets)

    def next_indices(self) -> np.ndarray:
        """Next batch of the fixed training set: epochs of shuffled passes, each example once per epoch."""
        while len(self.order) < self.batch_size:
            self.order = np.concatenate([self.order, self.shuffle.permutation(len(self.train.inputs))])
        idx, self.order = self.order[: self.batch_size], self.order[self.batch_size:]
        return idx


def max_token(*examples: Examples) -> int:
    return max(int(ex.inputs.max()) for ex in examples)


def to_tensors(*arrays: np.ndarray, device: torch.device) -> list[Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a)).long().to(device) for a in arrays]
