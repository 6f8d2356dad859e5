"""Run records: the result schema, the config hash that names a run, atomic writes and reads."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cdyn_bench import FORM_VERSIONS, current_stamp, numerics_stamp
from cdyn_bench.atomic import write_atomic
from cdyn_bench.registry import ConfigError

RESULT = "result.json"
# With train.save_weights, the model's state_dict at initialisation and after training, beside RESULT.
WEIGHTS = {"init": "weights_init.pt", "trained": "weights_final.pt"}
PROGRESS = "progress.json"
FINISHED = ("completed", "diverged")
# Fields of RunResult that describe this process's view of a record, not the record.
LOCAL_FIELDS = ("skipped", "path")
# Fields of RunResult that say how long it took, which differ between two runs that computed the same numbers.
TIMING_FIELDS = ("wall_seconds", "train_seconds", "eval_seconds", "tokens_per_s")


@dataclass
class RunResult:
    """Everything a run produced; `result.json` is this, as JSON. Schema documented in README.

    run_dir is relative to the folder that holds the run folders' parent: the out_dir for single
    runs ('runs/<name>'), the sweep folder for a sweep's cells ('cells/<name>'), so a record can be
    moved with its sweep. grad_norm_max: the largest gradient norm (before clipping) of the finite steps;
    divergence: at the diverging step, its loss, gradient norm and the model's extremes
    (cdyn_bench.mixer.introspect.EXTREMES), None for a completed run. principles: the principle card's
    predictions for the config (cdyn_bench.principles), made before training. numerics_version is
    cdyn_bench.NUMERICS_VERSION of the code that ran it, form_versions the FORM_VERSIONS of its forms ({} in
    records written before they were recorded: all at 1). eval_seconds: of train_seconds, the validation passes.
    stopped: why training ended (cap, target, plateau, diverged; "" in records written before it was recorded).
    reused_from: the folder of the record this one was copied from (the run key `reuse`), "" for a run trained here.
    """

    config: dict[str, Any]
    config_hash: str
    status: str
    seed: int
    metrics: dict[str, float | None] = field(default_factory=dict)
    history: list[dict[str, float | None]] = field(default_factory=list)
    steps: int = 0
    diverged_at: int | None = None
    stopped: str = ""
    grad_norm_max: float = 0.0
    divergence: dict[str, float | None] | None = None
    principles: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    tokens_per_s: float = 0.0
    n_params: int = 0
    state_size: int = 0
    forms: list[str] = field(default_factory=list)
    leaked_test_sequences: int = 0
    device: str = "cpu"
    num_threads: int = 0
    numerics_version: int = 0
    form_versions: dict[str, int] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    reused_from: str = ""
    run_dir: str = ""
    skipped: bool = False
    path: str = ""


def config_hash(identity: dict[str, Any]) -> str:
    """sha256 of a run's identity (RunConfig.identity(): no output-only keys, no inactive knobs), as sorted JSON."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def run_dir(root: Path, config: dict[str, Any], digest: str) -> Path:
    """<root>/<model>-<task>-<hash prefix>: readable, and unique per config."""
    return Path(root) / f"{config['model']['name']}-{config['task']['name']}-{digest[:12]}"


def finite_or_none(value: Any) -> Any:
    """The value with every nan/inf float replaced by None, recursively: records hold valid JSON only."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Atomic JSON write (temp file, fsync, rename); non-finite numbers are written as null."""
    write_atomic(path, lambda f: json.dump(finite_or_none(payload), f, indent=1, allow_nan=False))


def write_result(result: RunResult, directory: Path) -> Path:
    path = Path(directory) / RESULT
    write_json(path, {k: v for k, v in asdict(result).items() if k not in LOCAL_FIELDS})
    return path


def check_writable(directory: Path, key: str) -> None:
    """ConfigError naming `key` unless files can be created in `directory` (made if missing)."""
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"{key}: cannot write run records to {directory} ({err.strerror})") from None


def number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def read_result(path: Path) -> RunResult:
    """Parse a result.json (null numbers become nan); ValueError naming `path` if it is not a finished record."""
    try:
        payload = json.loads(Path(path).read_bytes().decode())
        result = RunResult(**payload)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a valid run record ({type(err).__name__}: {err})".splitlines()[0]) from None
    shapes = {"config": dict, "metrics": dict, "history": list, "forms": list, "form_versions": dict}
    wrong = [k for k, kind in shapes.items() if not isinstance(getattr(result, k), kind)]
    wrong += ["history"] if not wrong and not all(isinstance(row, dict) and number(row.get("step", 0))
                                                 for row in result.history) else []
    wrong += ["forms"] if not wrong and not all(isinstance(form, str) for form in result.forms) else []
    versions = result.form_versions.values() if not wrong else []
    wrong += ["form_versions"] if not all(isinstance(v, int) for v in versions) else []
    wrong += ["divergence"] if not isinstance(result.divergence, (dict, type(None))) else []
    if wrong:
        raise ValueError(f"{path}: not a valid run record ({wrong[0]} of the wrong type or shape)")
    bad = [k for k, v in result.metrics.items() if not number(v)]
    if bad:
        raise ValueError(f"{path}: not a valid run record (metric {bad[0]}={result.metrics[bad[0]]!r} is not a number)")
    if result.status not in FINISHED:
        raise ValueError(f"{path}: status {result.status!r} is not a finished run")
    nan = {k: math.nan if v is None else v for k, v in result.metrics.items()}
    history = [{k: math.nan if v is None else v for k, v in row.items()} for row in result.history]
    return dataclasses.replace(result, metrics=nan, history=history, path=str(path))


def finished(directory: Path, digest: str) -> RunResult | None:
    """The finished record of this config and numerics version in `directory`, or None.

    A record of another numerics version, or of another version of one of its forms, is not reused: the rerun
    overwrites it.
    """
    path = Path(directory) / RESULT
    if not path.exists():
        return None
    try:
        result = read_result(path)
    except ValueError:
        return None
    return result if result.config_hash == digest and is_current(result) else None


def stamp(result: RunResult) -> str:
    """The numerics that computed a record (cdyn_bench.numerics_stamp)."""
    return numerics_stamp(result.numerics_version, result.forms, result.form_versions)


def is_current(result: RunResult) -> bool:
    """Whether today's code computes what this record's did: its numerics version and its forms' own versions."""
    return stamp(result) == current_stamp(result.forms)


def form_versions(forms: list[str]) -> dict[str, int]:
    """The versions of these forms that a record written now stores."""
    return {form: FORM_VERSIONS[form] for form in sorted(set(forms))}


REUSABLE = ("cells", "runs")  # the run folders of a sweep folder and of an out_dir


def reusable(folders: list[str], name: str, digest: str) -> RunResult | None:
    """The first finished record of this config named `name` among the sweep folders (cells/<name>) or out_dirs
    (runs/<name>) in `folders`, or None."""
    for folder in folders:
        for kind in REUSABLE:
            if (done := finished(Path(folder) / kind / name, digest)) is not None:
                return done
    return None


@functools.cache
def code_version() -> dict[str, Any]:
    """The package version, and the git commit and dirty flag of its checkout when it is one."""
    from cdyn_bench import __version__

    info: dict[str, Any] = {"cdyn_bench": __version__, "git_commit": None, "git_dirty": None}
    root = Path(__file__).resolve().parent.parent
    run = functools.partial(subprocess.run, cwd=root, capture_output=True, text=True, timeout=5, check=True)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        # Only the checkout this package lives in, not a repository that merely contains an install.
        if Path(run(["git", "rev-parse", "--show-toplevel"]).stdout.strip()).resolve() == root:
            info["git_commit"] = run(["git", "rev-parse", "HEAD"]).stdout.strip()
            info["git_dirty"] = bool(run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip())
    return info


def versions() -> dict[str, Any]:
    """What ran the numbers. cpu: the instruction set ATen's kernels dispatch to ('x86_64 AVX512'); the same
    config and seed give the same bits on the same kind, and can differ in the last bits (which a training
    run can amplify) on another (scripts/rerun.py measures how far)."""
    import numpy
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "cpu": f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}", **code_version()}
