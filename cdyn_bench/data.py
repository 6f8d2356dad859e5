"""Task data for a run: checked task config, disjoint train/validation/test splits, torch batches."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cdyn_bench.registry import ConfigError, check_choice, lookup
from cdyn_bench.tasks import TASKS, Examples

LOSS_ON = ("scored", "all")
# Each split draws from its own seed stream: [run seed, split id].
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


@dataclass
class TaskConfig:
    """A task by registry name, the split sizes, the loss positions and the generator's parameters.

    num_train: size of a fixed training set, or 0 for fresh examples at every step.
    loss_on: 'scored' trains on the scored positions only; 'all' on the task's training targets.
    """

    name: str
    num_train: int = 0
    num_val: int = 500
    num_test: int = 1000
    loss_on: str = "scored"
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskConfig:
        d = dict(d)
        if "name" not in d:
            raise ConfigError("task.name is missing: choose a task, e.g. task=mqar")
        generator = lookup(TASKS, "task", d["name"])
        data_keys = {k: d.pop(k) for k in ("name", "num_train", "num_val", "num_test", "loss_on") if k in d}
        cfg = cls(**data_keys, params=check_params(generator, d))
        cfg.check()
        return cfg

    def check(self) -> None:
        check_choice("task.loss_on", self.loss_on, LOSS_ON)
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


class TaskData:
    """Validation and test sets, and training batches (from a fixed set or freshly drawn)."""

    def __init__(self, cfg: TaskConfig, seed: int, batch_size: int):
        self.cfg, self.batch_size = cfg, batch_size
        self.rngs = {split: np.random.default_rng([seed, i]) for split, i in SPLIT_IDS.items()}
        self.val = cfg.generate(cfg.num_val, self.rngs["val"])
        self.test = cfg.generate(cfg.num_test, self.rngs["test"])
        self.train = cfg.generate(cfg.num_train, self.rngs["train"]) if cfg.num_train else None
        self.vocab_size = int(cfg.params.get("vocab_size", max_token(self.val, self.test) + 1))
        self.seq_len = self.val.inputs.shape[1]
        self.test_rows = {row.tobytes() for row in self.test.inputs}
        self.leaked = 0 if self.train is None else self.count_leaks(self.train.inputs)

    def count_leaks(self, inputs: np.ndarray) -> int:
        """How many of these sequences are also test sequences."""
        return sum(row.tobytes() in self.test_rows for row in inputs)

    def train_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, loss targets) of one training batch."""
        if self.train is None:
            ex = self.cfg.generate(self.batch_size, self.rngs["train"])
            self.leaked += self.count_leaks(ex.inputs)
        else:
            idx = self.rngs["train"].integers(0, len(self.train.inputs), self.batch_size)
            ex = Examples(self.train.inputs[idx], self.train.targets[idx], self.train.train_targets[idx])
        return ex.inputs, (ex.targets if self.cfg.loss_on == "scored" else ex.train_targets)


def max_token(*examples: Examples) -> int:
    return max(int(ex.inputs.max()) for ex in examples)


def to_tensors(*arrays: np.ndarray, device: torch.device) -> list[Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a)).long().to(device) for a in arrays]
