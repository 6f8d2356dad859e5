"""Typed task configs: one dataclass per task, the split sizes plus the generator's full parameter set.

`task_config(values)` turns the composed `task` section into the dataclass of its task, with
every generator parameter present (defaults filled in from the generator's signature) and of the
annotated type (an int given for a float parameter becomes a float; anything else that does not
fit is a ConfigError), so that `task.power_a=1` and `task.power_a=1.0` are one config and one hash.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cdyn_bench.choices import LOSS_ON, TASK_READOUTS
from cdyn_bench.registry import ConfigError, check_choice, did_you_mean, lookup
from cdyn_bench.tasks import IGNORE, TASKS, VOCAB_SIZES, Examples

# Generator parameters the data layer sets per split, never a config key (see cdyn_bench.data).
SPLIT_PARAMS = ("test_split", "split")
TYPES = {"int": int, "float": float, "bool": bool, "str": str}


@dataclass
class TaskConfig:
    """A task by registry name, its split sizes, the loss positions and the read-out; subclasses add
    the generator's parameters as fields (TASK_CONFIGS).

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

    @property
    def params(self) -> dict[str, Any]:
        """The generator's keyword arguments."""
        base = {f.name for f in dataclasses.fields(TaskConfig)}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in base}

    def generate(self, num_examples: int, rng: np.random.Generator, **split: Any) -> Examples:
        """Examples from the generator; a parameter it refuses is a ConfigError naming task.<key>."""
        try:
            return TASKS[self.name](num_examples, rng, **self.params, **split)
        except ValueError as err:
            if str(err).split("=", 1)[0] in self.params:  # the generator's own refusal: "key=value: why"
                raise ConfigError(f"task.{err}") from None
            raise ConfigError(f"task={self.name}: its generator refused the values "
                              f"{', '.join(f'task.{k}={v}' for k, v in self.params.items())} ({err})") from None

    def vocabulary(self, *examples: Examples) -> int:
        """The model's vocabulary: the task's vocab_size parameter, the size its generator declares
        (tasks.VOCAB_SIZES: text), or one more than the largest token of the examples."""
        if "vocab_size" in self.params:
            return int(self.params["vocab_size"])
        if self.name in VOCAB_SIZES:
            return int(VOCAB_SIZES[self.name](**self.params))
        return max(int(ex.inputs.max()) for ex in examples) + 1

    def check(self) -> Examples:
        """Check the values (generating a few examples); returns them, for the checks that need T."""
        check_choice("task.loss_on", self.loss_on, LOSS_ON)
        check_choice("task.readout", self.readout, TASK_READOUTS)
        for key in ("num_train", "num_val", "num_test"):
            low = 0 if key == "num_train" else 1
            if getattr(self, key) < low:
                raise ConfigError(f"task.{key}={getattr(self, key)}: must be an integer >= {low}")
        for key, value in self.params.items():  # numpy's generators draw int64s
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**62:
                raise ConfigError(f"task.{key}={value}: too large; must be below 2^62")
        sample = self.generate(16, np.random.default_rng(0))
        check_readout(self.readout, sample)
        return sample


def check_readout(readout: str, examples: Examples) -> None:
    """Refuse a read-out that sees the answer.

    A causal LM reads the input token at the position it predicts, so targets that are that token
    are given away (compression with readout=lm). The last-position read-out sees the whole
    sequence, so it is fair only for reconstruction: every scored target is its position's input.
    The bar for lm is 90%: a task with a small alphabet matches its own input by chance (running parity
    does at about half its positions, and must read that input to be solved).
    """
    scored = examples.targets != IGNORE
    own = float((examples.targets == examples.inputs)[scored].mean()) if scored.any() else 0.0
    if readout == "lm" and own > 0.9:
        raise ConfigError(f"task.readout=lm: {own:.0%} of scored targets are the input token at their own "
                          "position, which a causal LM reads; use task.readout=last_position")
    if readout == "last_position" and own < 1.0:
        raise ConfigError("task.readout=last_position: the last position sees the whole sequence, so only "
                          "reconstruction tasks (targets = inputs, e.g. compression) may use it; use task.readout=lm")


def generator_fields(generator: Any) -> list[tuple[str, type, dataclasses.Field]]:
    """(name, type, field with default) of every keyword parameter of a task generator."""
    fields = []
    for name, p in inspect.signature(generator).parameters.items():
        if p.kind is p.KEYWORD_ONLY and name not in SPLIT_PARAMS:
            kind = TYPES.get(p.annotation, p.annotation)
            fields.append((name, kind, dataclasses.field(default=p.default)))
    return fields


TASK_CONFIGS: dict[str, type[TaskConfig]] = {
    name: dataclasses.make_dataclass(f"{name}_config", generator_fields(gen), bases=(TaskConfig,))
    for name, gen in TASKS.items()
}


def coerce(key: str, value: Any, kind: type) -> Any:
    """`value` as `kind` (int -> float allowed); ConfigError naming task.<key> otherwise."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind is float and (is_int or isinstance(value, float)):
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"task.{key}={value}: must be a finite number")
        return value
    if isinstance(value, kind) and (kind is not int or is_int):
        return value
    raise ConfigError(f"task.{key}={value!r}: must be of type {kind.__name__}")


def task_config(values: Mapping[str, Any]) -> TaskConfig:
    """The typed, checked config of the task named by values['name'], defaults filled in."""
    values = dict(values)
    if "name" not in values:
        raise ConfigError("task.name is missing: choose a task, e.g. task=mqar")
    schema = lookup(TASK_CONFIGS, "task", values["name"])
    kinds = {f.name: TYPES.get(f.type, f.type) for f in dataclasses.fields(schema)}
    for key, value in values.items():
        if key not in kinds:
            raise ConfigError(f"task.{key}: unknown key for task {values['name']}.{did_you_mean(key, kinds)} "
                              f"Allowed: {', '.join(k for k in kinds if k != 'name')}")
        values[key] = coerce(key, value, kinds[key])
    return schema(**values)
