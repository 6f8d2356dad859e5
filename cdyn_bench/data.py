"""Task data for a run: checked task config, disjoint train/validation/test splits, torch batches.

Splits come from separate seed streams, np.random.default_rng([seed, split id]), so validation and
test never share a stream with training; what overlap chance still leaves is counted (the
leakage check). A split whose generation takes longer than CACHE_MIN_SECONDS is stored as .npz
under $CDYN_BENCH_CACHE (default ~/.cache/cdyn-bench; 'off' disables), keyed by a sha256 of
the task, its parameters, the split, the seed, the size and the generators' source.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cdyn_bench import tasks
from cdyn_bench.atomic import write_atomic
from cdyn_bench.task_config import SPLIT_PARAMS, TaskConfig
from cdyn_bench.tasks import TASKS, Examples

# Each split draws from its own seed stream: [run seed, split id]; "order" shuffles a fixed train set.
SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "order": 3}
CACHE_MIN_SECONDS = 1.0


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


@functools.cache
def split_keys(task: str) -> frozenset[str]:
    """The per-split arguments (task_config.SPLIT_PARAMS) the task's generator takes."""
    return frozenset(SPLIT_PARAMS) & set(inspect.signature(TASKS[task]).parameters)


def split_params(cfg: TaskConfig, split: str) -> dict[str, bool | str]:
    """Generator arguments set per split (task_config.SPLIT_PARAMS), where the task takes them: test_split=True
    for validation and test (fuzzy recall builds its evaluation splits as MAD's test set); split, the split's
    name (the state-tracking tasks make the test split longer)."""
    keys = split_keys(cfg.name)
    return ({"test_split": split in ("val", "test")} if "test_split" in keys else {}) | (
        {"split": split} if "split" in keys else {})


def cache_key(cfg: TaskConfig, split: str, seed: int, num: int) -> str:
    identity = {"task": cfg.name, "params": {**cfg.params, **split_params(cfg, split)}, "split": split,
                "seed": seed, "num": num, "source": generators_digest()}
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
    examples = cfg.generate(num, split_rng(seed, split), **split_params(cfg, split))
    if path is not None and time.perf_counter() - start > CACHE_MIN_SECONDS:
        write_npz(path, examples)
    return examples


def write_npz(path: Path, examples: Examples) -> None:
    """Atomic .npz write; a cache that cannot be written is skipped."""
    arrays = {"inputs": examples.inputs, "targets": examples.targets, "train_targets": examples.train_targets}
    with contextlib.suppress(OSError):
        write_atomic(path, lambda f: np.savez(f, **arrays), mode="wb")


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
        self.vocab_size = cfg.vocabulary(self.val, self.test)
        self.seq_len = self.val.inputs.shape[1]
        self.leak = LeakCheck(self.test.inputs)
        if self.train is not None:
            self.leak.add(self.train.inputs)

    @property
    def leaked(self) -> int:
        """How many test sequences occur in the training data so far (the fixed set, or all batches)."""
        return self.leak.count

    def state_dict(self) -> dict:
        """Where the training stream stands: its generators, the epoch order left, the leak count."""
        return {"fresh": self.fresh.bit_generator.state, "shuffle": self.shuffle.bit_generator.state,
                "order": self.order.copy(), "leak_unseen": dict(self.leak.unseen), "leak_count": self.leak.count}

    def load_state_dict(self, state: dict) -> None:
        self.fresh.bit_generator.state, self.shuffle.bit_generator.state = state["fresh"], state["shuffle"]
        self.order = state["order"]
        self.leak.unseen, self.leak.count = Counter(state["leak_unseen"]), state["leak_count"]

    def train_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, loss targets) of one training batch."""
        if self.train is None:
            ex = self.cfg.generate(self.batch_size, self.fresh, **split_params(self.cfg, "train"))
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


def to_tensors(*arrays: np.ndarray, device: torch.device) -> list[Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a)).long().to(device) for a in arrays]
