"""Config mistakes as one line and an exit code, and the checked RunConfig of one job: shared by the console
entry points (cli) and the sweep callback (callbacks), which both sit above it."""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cdyn_bench.atomic import WriteFault
from cdyn_bench.registry import ConfigError, shown
from cdyn_bench.sweep import THREAD_KEYS, SweepIncomplete, available_cores, threads_per_job

if TYPE_CHECKING:
    from cdyn_bench.config import RunConfig

# Lines of OmegaConf's messages that describe its internals rather than the user's input.
_NOISE = ("reference_type=", "object_type=", "Set the environment variable HYDRA_FULL_ERROR")
USAGE_ERRORS = (ConfigError, HydraException, OmegaConfBaseException)


def one_line(err: BaseException) -> str:
    """The error and its cause flattened to one line, without OmegaConf's type bookkeeping."""
    if isinstance(err, OverrideParseException):
        return unparsable(err.override)
    parts = [str(err)] + ([str(err.__cause__)] if err.__cause__ else [])
    lines = [ln.strip() for part in parts for ln in part.splitlines()]
    return cut_long_words("; ".join(ln for ln in lines if ln and not ln.startswith(_NOISE)))


def cut_long_words(line: str, limit: int = 80) -> str:
    """A huge value (a 5,000-character override or path) cut wherever a message echoes it: each word of `limit`
    characters or more (a path: pass a limit above the usual path lengths, so that its file name stays)."""
    return re.sub(rf"\S{{{limit},}}", lambda m: f"{m.group(0)[:60]}... ({len(m.group(0))} characters)", line)


def unparsable(override: str) -> str:
    """One line for an override Hydra's grammar cannot read: which character, and how to pass it anyway."""
    odd = next((c for c in override if not (c.isascii() and c.isprintable())), None)
    where = f"the character {odd!r} is outside the grammar" if odd else "it does not follow the grammar"
    return (f"override {shown(override)} cannot be parsed: {where}; quote the value (key='...') or see "
            "https://hydra.cc/docs/1.2/advanced/override_grammar/basic")


def report_usage_errors(func, prog: str = "cdyn-run"):
    """Config mistakes exit 2 with one line; faults that lose nothing exit 1 with one line; bugs keep their
    traceback. Also Hydra's reporter around the app (cdyn_bench.hydra_adapter.replace_error_reporter)."""
    try:
        return func()
    except USAGE_ERRORS as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except (WriteFault, SweepIncomplete) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(1)


def job_run_config(cfg: DictConfig, launcher: DictConfig, overrides: list[str] = ()) -> RunConfig:
    """The checked RunConfig of one job; train.num_threads=0 becomes the launcher's share of the cores."""
    from cdyn_bench.compose import to_run_config
    from cdyn_bench.config import check_bool_overrides

    check_bool_overrides(list(overrides))
    run_cfg = to_run_config(cfg)
    if run_cfg.train.num_threads == 0:
        sizes = {key: OmegaConf.select(launcher, key) for key in THREAD_KEYS}
        run_cfg.train.num_threads = threads_per_job(sizes, available_cores())
    return run_cfg
