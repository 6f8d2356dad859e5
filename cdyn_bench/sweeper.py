"""Hydra's basic sweeper, resuming: cells whose finished record exists start no job, on any launcher.

The sweep's manifest (written by cdyn_bench.callbacks when the multirun starts, before the sweeper runs)
names each job's record folder and config hash; a job whose record is finished (and force is off) is left
out of its batch, so resuming a sweep on SLURM or Ray costs no job start for the cells it already has.
This leans on BasicSweeper's batching (split_arguments, get_job_batch, is_done), reached through
cdyn_bench.hydra_adapter; tests/test_sweep.py and tests/test_hydra_adapter.py fail if Hydra changes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from cdyn_bench import record
from cdyn_bench.hydra_adapter import basic_sweeper
from cdyn_bench.sweep import SweepIncomplete, read_manifest


class Resuming(basic_sweeper()):
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
        self.refuse_while_queued()
        while not self.is_done():
            batch = [job for job in self.get_job_batch() if tuple(job) not in done]
            if not batch:
                continue
            self.validate_batch_is_legal(batch)
            watch = self.watch()
            try:
                with watch:
                    results = self.launcher.launch(batch, initial_job_idx=first)
                for result in results:
                    _ = result.return_value  # raises if the job failed
            except (Exception, KeyboardInterrupt) as err:
                if watch.message is not None:  # SLURM could never start the jobs: the watch cancelled them
                    raise SweepIncomplete(watch.message) from None
                if watch.submitted:  # detach: the jobs are SLURM's now
                    print(f"submitted {len(batch)} cells as SLURM job {', '.join(watch.submitted)} "
                          f"({self.config.hydra.launcher.name}); run the same command when they are done to finish "
                          "what is missing; cdyn-report reads the records as they land", flush=True)
                    return returns
                if type(err).__name__ != "UncompletedJobError":  # a bug in a cell keeps its traceback
                    raise
                raise SweepIncomplete(str(err).splitlines()[0]) from None
            first += len(batch)
            returns.append(results)
        self.check_finished()
        return returns

    def on_slurm(self) -> bool:
        return type(self.launcher).__name__ == "SlurmLauncher" and "name" in self.config.hydra.launcher

    def watch(self) -> Any:
        """A cdyn_bench.slurm_watch.PendingWatch of this sweep's jobs on SLURM (detached with `detach=true`),
        else a watch that never fires."""
        from cdyn_bench.slurm_watch import NoWatch, PendingWatch

        if not self.on_slurm():
            if self.config.get("detach"):
                raise SweepIncomplete("detach=true submits a sweep's jobs and returns: it needs hydra/launcher=slurm "
                                      f"(this sweep runs on {type(self.launcher).__name__})")
            return NoWatch()
        return PendingWatch(str(self.config.hydra.launcher.name), detach=bool(self.config.get("detach")))

    def refuse_while_queued(self) -> None:
        """On SLURM, refuse to submit while jobs of this sweep (its name) are still pending or running: their
        cells have no record yet and would be trained twice."""
        from cdyn_bench.slurm_watch import queued

        if self.on_slurm() and (jobs := queued(str(self.config.hydra.launcher.name))):
            raise SweepIncomplete(f"SLURM still holds job {', '.join(jobs[:3])} of this sweep "
                                  f"({self.config.hydra.launcher.name}): run the same command again when squeue no "
                                  "longer lists it (cdyn-report reads the records finished so far)")

    def check_finished(self) -> None:
        """SweepIncomplete naming the planned cells still without a record (a job interrupted by a signal
        returns without one: cancelled, preempted, at its time limit)."""
        from cdyn_bench.sweep import missing_cells

        manifest = read_manifest(Path(self.config.hydra.sweep.dir))
        missing = missing_cells(manifest) if manifest and manifest.planned else []
        if missing:
            names = ", ".join(Path(cell.run_dir).name for cell in missing[:3])
            raise SweepIncomplete(f"{len(missing)} of {len(manifest.planned)} cells have no record ({names}"
                                  f"{' ...' if len(missing) > 3 else ''}; interrupted, cancelled or failed)")
