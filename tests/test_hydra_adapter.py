"""The Hydra internals cdyn-bench leans on, each reached through cdyn_bench.hydra_adapter: these fail loudly, naming
the internal, when a Hydra release moves or changes one (supported: hydra-core 1.3.x)."""

from __future__ import annotations

import inspect

import hydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from cdyn_bench import hydra_adapter


def test_the_supported_hydra_version():
    assert hydra.__version__.startswith("1.3."), f"hydra-core {hydra.__version__}: the adapter is tested on 1.3.x"


def test_the_basic_sweeper_is_where_the_adapter_names_it():
    sweeper = hydra_adapter.basic_sweeper()
    assert f"{sweeper.__module__}.{sweeper.__qualname__}" == hydra_adapter.BASIC_SWEEPER
    assert list(inspect.signature(sweeper.split_arguments).parameters) == ["overrides", "max_batch_size"]
    for method in ("sweep", "get_job_batch", "is_done", "_parse_config"):
        assert callable(getattr(sweeper, method, None)), f"BasicSweeper.{method} is gone"


def test_split_jobs_expands_sweeps_in_hydra_order():
    parsed = OverridesParser.create().parse_overrides(["a=1,2", "b=x,y", "c=3"])
    assert hydra_adapter.split_jobs(parsed) == [
        ["a=1", "b=x", "c=3"], ["a=1", "b=y", "c=3"], ["a=2", "b=x", "c=3"], ["a=2", "b=y", "c=3"]]


def test_the_error_reporter_is_what_hydra_calls_around_the_app():
    import hydra._internal.utils as hydra_utils

    assert callable(hydra_utils.run_and_report)
    # _run_hydra looks run_and_report up as a module global at call time, so replacing it takes effect.
    assert "run_and_report" in hydra_utils._run_hydra.__code__.co_names
    original = hydra_utils.run_and_report
    try:
        hydra_adapter.replace_error_reporter(print)
        assert hydra_utils.run_and_report is print
    finally:
        hydra_utils.run_and_report = original


def test_the_plugin_registry_takes_a_class():
    from hydra.core.plugins import Plugins

    assert callable(getattr(Plugins.instance(), "_register", None)), "Plugins._register is gone"
