"""Hydra callback of a multirun: plans the sweep's cells into a manifest and shows its progress."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from cdyn_bench.hydra_adapter import BASIC_SWEEPER, split_jobs
from cdyn_bench.sweep import Manifest, plan_cell, write_manifest
from cdyn_bench.usage import job_run_config, report_usage_errors

RESUMING_SWEEPER = "hydra_plugins.cdyn_bench_sweeper.ResumingSweeper"


def job_overrides(config: DictConfig) -> list[list[str]] | None:
    """The override list of every job, as Hydra's basic sweeper expands them; None for other sweepers."""
    sweeper = config.hydra.sweeper
    if sweeper._target_ not in (BASIC_SWEEPER, RESUMING_SWEEPER):
        return None
    arguments = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    arguments += list(config.hydra.overrides.task)
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().hydra.config_loader)
    return split_jobs(parser.parse_overrides(arguments))


def job_config(config: DictConfig, overrides: list[str]) -> tuple[DictConfig, DictConfig]:
    """(the job's config without the hydra node, its hydra.launcher), composed as the launcher will."""
    loader = GlobalHydra.instance().hydra.config_loader
    job = loader.load_sweep_config(config, list(overrides))
    with open_dict(job):
        hydra_node = job.pop("hydra")
    return job, hydra_node.launcher


def plan_sweep(config: DictConfig) -> tuple[Manifest, list[str]]:
    """(every planned cell with the directory its record will have, the cells' notes: TrainConfig.notes);
    ConfigError on a bad value."""
    sweep_dir = Path(config.hydra.sweep.dir)
    manifest = Manifest(str(sweep_dir), config.hydra.sweeper._target_, config.hydra.launcher._target_,
                        list(config.hydra.overrides.task))
    jobs = job_overrides(config)
    if jobs is not None:
        configs = [job_run_config(*job_config(config, overrides), overrides) for overrides in jobs]
        manifest.planned = [plan_cell(i, o, c) for i, (o, c) in enumerate(zip(jobs, configs))]
        return manifest, list(dict.fromkeys(line for c in configs for line in c.train.notes()))
    return manifest, []


def check_unnamed(config: DictConfig, manifest: Manifest) -> None:
    """Refuse an unnamed sweep (sweep_name left at its default) whose folder holds another sweep's manifest:
    it would overwrite that sweep's plan. The same command again (a resume) is fine."""
    from cdyn_bench.config import RunConfig
    from cdyn_bench.registry import ConfigError, shown
    from cdyn_bench.sweep import read_manifest

    default = RunConfig.__dataclass_fields__["sweep_name"].default
    earlier = read_manifest(Path(manifest.sweep_dir))
    if OmegaConf.select(config, "sweep_name") == default and earlier and earlier.overrides != manifest.overrides:
        raise ConfigError(f"sweep_name={default!r} (the default): {manifest.sweep_dir} holds another sweep "
                          f"(overrides {shown(' '.join(earlier.overrides))}); name this one, e.g. sweep_name=my_sweep")


class SweepCallback(Callback):
    """Writes <sweep dir>/manifest.json when a multirun starts, then shows its progress until it ends."""

    def __init__(self) -> None:
        self.progress = None

    def __getstate__(self) -> dict[str, Any]:
        # Launchers pickle the callbacks to their workers; the progress thread stays here.
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.progress = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from cdyn_bench.progress import SweepProgress

        # A bad value exits 2 here, before any job runs (Hydra turns other exceptions into warnings).
        manifest, notes = report_usage_errors(lambda: plan_sweep(config))
        report_usage_errors(lambda: check_unnamed(config, manifest))
        for line in notes:
            print(f"cdyn-run: note: {line}", file=sys.stderr)
        report_usage_errors(lambda: write_manifest(manifest))
        if manifest.planned is not None:
            self.progress = SweepProgress(manifest, live=bool(OmegaConf.select(config, "progress"))).start()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
