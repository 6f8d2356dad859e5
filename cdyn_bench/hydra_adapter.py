"""Every use of a Hydra internal, each behind one function: tests/test_hydra_adapter.py fails loudly when a Hydra
release moves or changes one. Supported: hydra-core 1.3.x (pyproject pins >=1.3.2,<1.4; tested on 1.3.8).

- the basic sweeper's class (the resuming sweeper subclasses it) and its expansion of sweep overrides into
  jobs (split_arguments), which the sweep's plan reads before any job starts;
- the reporter Hydra wraps around the app (hydra._internal.utils.run_and_report), replaced so that config
  mistakes exit 2 with one line;
- the plugin registry's _register, because Hydra finds plugins by walking the hydra_plugins package, which an
  editable install's import hook hides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def basic_sweeper() -> type:
    """Hydra's BasicSweeper class."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper


def split_jobs(overrides: list[Any]) -> list[list[str]]:
    """Parsed overrides (sweeps among them) as every job's override list, in Hydra's order, in one batch."""
    (jobs,) = basic_sweeper().split_arguments(overrides, None)
    return jobs


def replace_error_reporter(reporter: Callable[[Callable[[], Any]], Any]) -> None:
    """Make Hydra call `reporter(func)` where it would call its own run_and_report(func)."""
    import hydra._internal.utils as hydra_utils

    hydra_utils.run_and_report = reporter


def register_plugin(plugin: type) -> None:
    """Register a plugin class (a sweeper) with Hydra's plugin registry directly."""
    from hydra.core.plugins import Plugins

    Plugins.instance()._register(plugin)
