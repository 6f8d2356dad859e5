"""Run records: the result schema, the config hash that names a run, atomic writes and reads."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULT = "result.json"
PROGRESS = "progress.json"
# Keys that change where, how fast or how a run is reported, never what it computes.
OUTPUT_ONLY_KEYS = ("force", "out_dir", "sweep_name", "wandb", "progress")
OUTPUT_ONLY_TRAIN_KEYS = ("num_threads",)
FINISHED = ("completed", "diverged")


@dataclass
class RunResult:
    """Everything a run produced; `result.json` is this, as JSON. Schema documented in README."""

    config: dict[str, Any]
    config_hash: str
    status: str
    seed: int
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    diverged_at: int | None = None
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    tokens_per_s: float = 0.0
    n_params: int = 0
    state_size: int = 0
    forms: list[str] = field(default_factory=list)
    leaked_test_sequences: int = 0
    device: str = "cpu"
    versions: dict[str, str] = field(default_factory=dict)
    run_dir: str = ""
    skipped: bool = False


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the resolved config without output-only keys (sorted JSON); train.num_threads is one."""
    identity = {k: v for k, v in config.items() if k not in OUTPUT_ONLY_KEYS}
    identity["train"] = {k: v for k, v in config["train"].items() if k not in OUTPUT_ONLY_TRAIN_KEYS}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def run_dir(root: Path, config: dict[str, Any], digest: str) -> Path:
    """<root>/<model>-<task>-<hash prefix>: readable, and unique per config."""
    return Path(root) / f"{config['model']['name']}-{config['task']['name']}-{digest[:12]}"


def write_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temp file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1, allow_nan=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_result(result: RunResult) -> Path:
    path = Path(result.run_dir) / RESULT
    write_atomic(path, {k: v for k, v in asdict(result).items() if k != "skipped"})
    return path


def read_result(path: Path) -> RunResult:
    """Parse a result.json; raises ValueError if it is unreadable or not a finished record."""
    try:
        payload = json.loads(Path(path).read_text())
        result = RunResult(**payload)
    except (OSError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{path}: not a valid run record ({err})") from None
    shapes = {"config": dict, "metrics": dict, "history": list}
    if not all(isinstance(getattr(result, k), kind) for k, kind in shapes.items()):
        raise ValueError(f"{path}: not a valid run record (config, metrics or history of the wrong type)")
    if result.status not in FINISHED:
        raise ValueError(f"{path}: status {result.status!r} is not a finished run")
    return result


def finished(directory: Path, digest: str) -> RunResult | None:
    """The finished record of this config in `directory`, or None if absent, broken or another config."""
    path = Path(directory) / RESULT
    if not path.exists():
        return None
    try:
        result = read_result(path)
    except ValueError:
        return None
    return result if result.config_hash == digest else None


def versions() -> dict[str, str]:
    import numpy
    import torch

    from cdyn_bench import __version__

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "cdyn_bench": __version__}
