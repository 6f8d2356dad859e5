"""The search rule's knobs (the `search` section of a run's config: output-only, it changes no run): torch- and
pandas-free, so the config schema can hold it. What the rule does with them: cdyn_bench.search."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cdyn_bench.registry import ConfigError


@dataclass
class SearchRule:
    """When a cell's verdict rests on the search, and how the search is extended (see the module docstring).

    target: cells whose best mean validation accuracy reaches it are settled; lr_margin: how much an edge
    lr must beat its inner neighbour by to count as an edge (about the seed noise of a cell's mean);
    rising: a seed gaining more validation accuracy than this over its last interval at the cap is still
    learning; patience: the extension runs' plateau stop (evaluations without a gain of plateau_delta;
    0 = none), chosen from the records' own take-off times (results/bench/search.md).
    """

    target: float = 0.99
    lr_margin: float = 0.03
    rising: float = 0.02
    lr_factor: float = 3.0
    lr_min: float = 1e-4
    lr_max: float = 3e-2
    cap_factor: int = 3
    max_steps_ceiling: int = 4500
    patience: int = 8
    plateau_delta: float = 0.01
    max_rounds: int = 0

    def check(self) -> None:
        for key in ("target", "lr_margin", "rising", "lr_min", "lr_max", "plateau_delta"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ConfigError(f"search.{key}={value}: must be a finite number >= 0")
        if self.lr_factor <= 1 or self.cap_factor < 2:
            raise ConfigError(f"search.lr_factor={self.lr_factor}, search.cap_factor={self.cap_factor}: "
                              "need lr_factor > 1 and cap_factor >= 2")
        if self.lr_min > self.lr_max:
            raise ConfigError(f"search.lr_min={self.lr_min}: must be <= search.lr_max={self.lr_max}")
        for key in ("patience", "max_steps_ceiling", "max_rounds"):
            if getattr(self, key) < 0:
                raise ConfigError(f"search.{key}={getattr(self, key)}: must be >= 0")
