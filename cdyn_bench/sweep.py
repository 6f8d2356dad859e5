"""Sweeps: the planned cells of a multirun, its manifest, and threads per job for a launcher."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdyn_bench import record

if TYPE_CHECKING:
    from cdyn_bench.config import RunConfig

MANIFEST = "manifest.json"
CELLS = "cells"


@dataclass
class Cell:
    """One planned job of a sweep: its Hydra overrides and its record's folder, relative to the sweep folder."""

    job: int
    overrides: list[str]
    run_dir: str
    config_hash: str
    force: bool = False


@dataclass
class Manifest:
    """The cells a sweep plans, written at its start; `planned` is None when the sweeper plans alone.

    sweep_dir is where the manifest lives; it is not stored, so the sweep folder can be moved.
    """

    sweep_dir: str
    sweeper: str
    launcher: str
    overrides: list[str] = field(default_factory=list)
    planned: list[Cell] | None = None

    @property
    def swept(self) -> list[str]:
        """Override keys that take more than one value across the planned cells."""
        values: dict[str, set[str]] = {}
        for cell in self.planned or []:
            for item in cell.overrides:
                key, _, value = item.partition("=")
                values.setdefault(key, set()).add(value)
        return [key for key, seen in values.items() if len(seen) > 1]

    def record_dir(self, cell: Cell) -> Path:
        return Path(self.sweep_dir) / cell.run_dir


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, as SLURM and taskset set it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# Launcher config keys (dotted) that size a job: submitit, Ray, joblib.
THREAD_KEYS = ("cpus_per_task", "ray.remote.num_cpus", "n_jobs")


def threads_per_job(launcher: dict[str, Any], cores: int) -> int:
    """Torch threads for one job from the launcher's THREAD_KEYS values, or 0 (all cores) if none is set.

    submitit: cpus_per_task; Ray: the remote's num_cpus; joblib: the cores split between n_jobs workers.
    """
    for key in THREAD_KEYS[:2]:
        if launcher.get(key):
            return int(launcher[key])
    n_jobs = launcher.get("n_jobs")
    if not n_jobs:
        return 0
    workers = cores if n_jobs < 0 else min(n_jobs, cores)
    return max(1, cores // workers)


def plan_cell(job: int, overrides: list[str], cfg: RunConfig) -> Cell:
    """The cell run(cfg, <sweep dir>/cells) will write, named exactly as run() names it."""
    digest = record.config_hash(cfg.identity())
    directory = record.run_dir(Path(CELLS), dataclasses.asdict(cfg), digest)
    return Cell(job, list(overrides), directory.as_posix(), digest, cfg.force)


def write_manifest(manifest: Manifest) -> Path:
    path = Path(manifest.sweep_dir) / MANIFEST
    record.check_writable(path.parent, "out_dir")
    record.write_json(path, {k: v for k, v in dataclasses.asdict(manifest).items() if k != "sweep_dir"})
    return path


def read_manifest(sweep_dir: Path) -> Manifest | None:
    """The manifest in `sweep_dir`, or None when there is none or it cannot be read."""
    try:
        payload = json.loads((Path(sweep_dir) / MANIFEST).read_text())
        planned = payload.pop("planned")
        cells = None if planned is None else [Cell(**c) for c in planned]
        return Manifest(sweep_dir=str(sweep_dir), **payload, planned=cells)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def missing_cells(manifest: Manifest) -> list[Cell]:
    """Planned cells without a finished record of their config."""
    return [c for c in manifest.planned or [] if record.finished(manifest.record_dir(c), c.config_hash) is None]


class SweepIncomplete(Exception):
    """A scheduler ended a cell without its result (cancelled, preempted, timed out): one line, exit 1."""

    def __init__(self, what: str):
        super().__init__(f"a cell did not finish: {what}; finished cells are kept; run the same command again to "
                         "finish the rest")
