"""Hydra's basic sweeper, resuming: cells whose finished record exists start no job, on any launcher.

The sweep's manifest (written by cdyn_bench.callbacks when the multirun starts, before the sweeper runs)
names each job's record folder and config hash; a job whose record is finished (and force is off) is left
out of its batch, so resuming a sweep on SLURM or Ray costs no job start for the cells it already has.
This leans on BasicSweeper's batching (split_arguments, get_job_batch, is_done); tests/test_sweep.py
fails if Hydra changes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from cdyn_bench import record
from cdyn_bench.sweep import read_manifest


class Resuming(BasicSweeper):
    """BasicSweeper whose batches leave out the jobs of finished cells (see the module docstring)."""

    def finished_jobs(self) -> set[tuple[str, ...]]:
        """The override lists of the planned cells whose finished record exists."""
        manifest = read_manifest(Path(self.config.hydra.sweep.dir))
        if manifest is None or manifest.planned is None:
            return set()
        return {tuple(cell.overrides) for cell in manifest.planned
                if not cell.force and record.finished(manifest.record_dir(cell), cell.config_hash) is not None}

    def sweep(self, arguments: list[str]) -> Any:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides([*self._parse_config(), *arguments]),
                                              self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        done, returns, first = self.finished_jobs(), [], 0
        while not self.is_done():
            batch = [job for job in self.get_job_batch() if tuple(job) not in done]
            if not batch:
                continue
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=first)
            for result in results:
                _ = result.return_value  # raises if the job failed
            first += len(batch)
            returns.append(results)
        return returns
