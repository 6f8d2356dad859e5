"""Console entry point `cdyn-run`: the Hydra app around run(cfg)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from cdyn_bench.config import RunConfig, register_schema, to_run_config
from cdyn_bench.registry import ConfigError

# Lines of OmegaConf's messages that describe its internals rather than the user's input.
_NOISE = ("reference_type=", "object_type=", "Set the environment variable HYDRA_FULL_ERROR")
USAGE_ERRORS = (ConfigError, HydraException, OmegaConfBaseException)


def one_line(err: BaseException) -> str:
    """The error and its cause flattened to one line, without OmegaConf's type bookkeeping."""
    parts = [str(err)] + ([str(err.__cause__)] if err.__cause__ else [])
    lines = [ln.strip() for part in parts for ln in part.splitlines()]
    return "; ".join(ln for ln in lines if ln and not ln.startswith(_NOISE))


def _report_usage_errors(func):
    """Config mistakes exit 2 with one line; bugs keep their traceback. Replaces Hydra's reporter."""
    try:
        return func()
    except USAGE_ERRORS as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"cdyn-run: error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)


def record_root(cfg: RunConfig) -> Path:
    """Single runs go to <out_dir>/runs; jobs of a multirun to <sweep dir>/cells."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return Path(hydra_cfg.sweep.dir) / "cells"
    return Path(cfg.out_dir) / "runs"


@hydra.main(version_base="1.3", config_path="pkg://cdyn_bench.conf", config_name="config")
def _run_app(cfg: DictConfig) -> None:
    from cdyn_bench.display import print_summary
    from cdyn_bench.run import run

    # SystemExit passes through Hydra's job runner, so bad values exit 2 from inside the job too.
    run_cfg = _report_usage_errors(lambda: to_run_config(cfg))
    print_summary(_report_usage_errors(lambda: run(run_cfg, record_root(run_cfg))))


def run_main() -> None:
    """`cdyn-run`: compose the config from conf/ and the command line, then train one run per job."""
    import hydra._internal.utils as hydra_utils

    register_schema()
    hydra_utils.run_and_report = _report_usage_errors
    _run_app()

