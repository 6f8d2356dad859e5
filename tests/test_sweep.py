"""Sweeps: launcher presets, threads per job, manifest, progress, kill and resume, broken records, submitit."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import BIN, TINY, cdyn_run, cli_env, compose_hydra, write_record

from cdyn_bench.progress import SweepProgress
from cdyn_bench.record import RESULT, read_result
from cdyn_bench.report import make_report
from cdyn_bench.table import TIMING_COLUMNS, load
from cdyn_bench.sweep import MANIFEST, Cell, Manifest, missing_cells, read_manifest, threads_per_job

# The smoke experiment's 12 cells, slow enough (about half a second each) to be killed part way.
SMOKE = ("+experiment=smoke", "hydra/launcher=parallel", "wandb=disabled", "progress=false")


@pytest.mark.parametrize("launcher,cores,threads", [
    ({"n_jobs": 2}, 2, 1), ({"n_jobs": -1}, 16, 1), ({"n_jobs": 4}, 16, 4), ({"n_jobs": 8}, 2, 1),
    ({"cpus_per_task": 4, "n_jobs": None}, 64, 4), ({"ray.remote.num_cpus": 2}, 64, 2), ({}, 8, 0),
], ids=["joblib-2", "joblib-all", "joblib-4-of-16", "joblib-oversubscribed", "submitit", "ray", "basic"])
def test_threads_per_job_split_the_cores(launcher, cores, threads):
    assert threads_per_job(launcher, cores) == threads


PRESETS = [
    ("parallel", "joblib_launcher.JoblibLauncher", "hydra_plugins.hydra_joblib_launcher", 1),
    ("slurm", "submitit_launcher.SlurmLauncher", "hydra_plugins.hydra_submitit_launcher", 1),
    ("slurm_local", "submitit_launcher.LocalLauncher", "hydra_plugins.hydra_submitit_launcher", 1),
    ("ray_cluster", "ray_launcher.RayLauncher", "hydra_plugins.hydra_ray_launcher", 1),
]


@pytest.mark.parametrize("preset,target,plugin,threads", PRESETS, ids=[p[0] for p in PRESETS])
def test_launcher_presets_compose(preset, target, plugin, threads):
    pytest.importorskip(plugin)
    from omegaconf import open_dict

    from cdyn_bench.usage import job_run_config

    cfg = compose_hydra(f"hydra/launcher={preset}", "+experiment=smoke")
    assert cfg.hydra.launcher._target_.endswith(target)
    launcher = cfg.hydra.launcher
    with open_dict(cfg):
        del cfg["hydra"]
    cores = os.sched_getaffinity(0) if preset == "parallel" else None
    expected = max(1, len(cores) // 2) if cores else threads
    assert job_run_config(cfg, launcher).train.num_threads == expected


@pytest.mark.parametrize("experiment,cells", [("smoke", 12), ("noisy_icr_models", 18)])
def test_experiments_are_multiruns_with_a_stable_sweep_dir(experiment, cells):
    cfg = compose_hydra(f"+experiment={experiment}")
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.hydra.sweep.dir == f"outputs/sweeps/{experiment}"
    sizes = [len(str(v).split(",")) for v in cfg.hydra.sweeper.params.values()]
    assert math.prod(sizes) == cells


def test_a_bad_value_in_a_sweep_exits_2_before_any_cell_runs(tmp_path):
    proc = cdyn_run(tmp_path, "-m", "train.lr=-1,0.1", *TINY)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "train.lr" in proc.stderr
    assert not list(tmp_path.rglob(RESULT))


def test_progress_counts_skipped_new_and_diverged_cells(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    old = write_record(sweep, "gated")
    new = write_record(sweep, "softmax", status="diverged", diverged_at=3)
    (sweep / new.run_dir).rename(tmp_path / "not_yet")
    cells = [Cell(i, [f"seed={i}"], r.run_dir, r.config_hash) for i, r in enumerate([old, new])]
    progress = SweepProgress(Manifest(str(sweep), "basic", "basic", [], cells), live=False, interval=0.05).start()
    assert progress.counts == {"done": 1, "skipped": 1, "diverged": 0, "new": 0}
    (tmp_path / "not_yet").rename(sweep / new.run_dir)
    time.sleep(0.3)
    progress.stop()
    assert progress.counts == {"done": 2, "skipped": 1, "diverged": 1, "new": 1}
    out = capsys.readouterr().out
    assert "diverged at step 3" in out and "2/2 cells done (1 skipped, 1 diverged, 0 not done)" in out


def record_times(sweep: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in sweep.rglob(RESULT)}


def start_and_kill(cwd: Path, sweep: Path, *overrides: str, records: int = 2) -> None:
    """Start a sweep in its own process group and SIGKILL the group once `records` records exist."""
    env = cli_env(cwd)
    proc = subprocess.Popen([str(BIN / "cdyn-run"), *overrides], cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(sweep.rglob(RESULT))) < records and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def comparable_table(sweep: Path) -> pd.DataFrame:
    return make_report([sweep], sweep / "report").table.drop(columns=TIMING_COLUMNS)


def test_killed_sweep_resumes_to_the_table_of_an_uninterrupted_one(tmp_path):
    killed, whole = tmp_path / "outputs/sweeps/killed", tmp_path / "outputs/sweeps/whole"
    start_and_kill(tmp_path, killed, *SMOKE, "sweep_name=killed")
    before = record_times(killed)
    assert 2 <= len(before) < 12, "the sweep was not interrupted part way"
    broken = sorted(killed.rglob(RESULT))[0]
    broken.write_text(broken.read_text()[:200])
    report = make_report([killed], killed / "report")
    assert [line for line in report.problems if str(broken) in line] and len(load([killed])[0]) == len(before) - 1

    resumed = cdyn_run(tmp_path, *SMOKE, "sweep_name=killed")
    assert resumed.returncode == 0, resumed.stderr
    after = record_times(killed)
    read_result(broken)
    assert len(after) == 12 and [name for name, t in before.items() if after[name] != t] == [broken.parent.name]
    assert f"12/12 cells done ({len(before) - 1} skipped" in resumed.stdout
    planned = read_manifest(killed).planned
    assert {Path(c.run_dir).name for c in planned} == set(after)
    assert all(c.run_dir.startswith("cells/") for c in planned)
    assert {read_result(killed / c.run_dir / RESULT).run_dir for c in planned} == {c.run_dir for c in planned}

    assert cdyn_run(tmp_path, *SMOKE, "sweep_name=whole").returncode == 0
    pd.testing.assert_frame_equal(comparable_table(killed), comparable_table(whole))

    # Cell folders are stored relative to the sweep folder, so a moved sweep still finds its records.
    moved = killed.rename(tmp_path / "moved")
    assert "sweep_dir" not in json.loads((moved / MANIFEST).read_text())
    manifest = read_manifest(moved)
    assert len(manifest.planned) == 12 and missing_cells(manifest) == []


@pytest.mark.slow
def test_submitit_local_executor_runs_a_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    # train.num_threads=0: each job takes the launcher's cpus_per_task.
    tiny = [o for o in TINY if not o.startswith("train.num_threads=")]
    proc = cdyn_run(tmp_path, "-m", "hydra/launcher=slurm_local", "model=gated,softmax", *tiny)
    assert proc.returncode == 0, proc.stderr
    sweep = tmp_path / "outputs/sweeps/sweep"
    records = [read_result(p) for p in sweep.rglob(RESULT)]
    assert len(records) == 2 and {r.config["train"]["num_threads"] for r in records} == {1}
    assert {Path(c.run_dir).name for c in read_manifest(sweep).planned} == {Path(r.run_dir).name for r in records}
    assert list((sweep / ".submitit").iterdir())


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=parallel"]], ids=["basic", "joblib"])
def test_a_resumed_sweep_starts_no_job_for_a_finished_cell(tmp_path, launcher):
    def launched(*seeds: str) -> list[str]:
        proc = cdyn_run(tmp_path, "-m", *launcher, *TINY, f"seed={','.join(seeds)}", "sweep_name=resume")
        assert proc.returncode == 0, proc.stderr
        return [line for line in (proc.stdout + proc.stderr).splitlines() if "[HYDRA] \t#" in line]

    assert len(launched("0", "1")) == 2
    again = launched("0", "1", "2")
    assert len(again) == 1 and " seed=2 " in again[0]
    assert launched("0", "1", "2") == []


def test_hydra_plugin_registry_still_takes_the_resuming_sweeper():
    # cdyn_bench.cli.register_sweeper leans on Hydra's plugin registry; this fails loudly if Hydra changes it.
    from hydra.core.plugins import Plugins

    from cdyn_bench.cli import register_sweeper

    register_sweeper()
    assert "hydra_plugins.cdyn_bench_sweeper.ResumingSweeper" in Plugins.instance().class_name_to_class


def test_a_job_only_completing_is_waited_for_and_a_running_one_is_held(tmp_path, monkeypatch):
    """After scancel, SLURM lists the job as COMPLETING (CG) while its run saves its checkpoint: the resumed sweep
    waits for it to leave instead of refusing; a pending or running job is held at once."""
    from cdyn_bench.slurm_watch import queued

    calls = tmp_path / "calls"
    squeue = tmp_path / "squeue"  # lists job 8 as CG on the first two calls, then nothing
    squeue.write_text(f"#!/bin/sh\necho x >> {calls}\n[ $(wc -l < {calls}) -le 2 ] && echo '8|CG'\nexit 0\n")
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert queued("cdyn-x", settle=30, poll=0.01) == [] and len(calls.read_text().split()) == 3
    squeue.write_text("#!/bin/sh\necho '8|CG'\necho '9|R'\n")
    assert queued("cdyn-x", settle=30, poll=0.01) == ["8", "9"]  # a running job: no wait
    squeue.write_text("#!/bin/sh\necho '8|CG'\n")
    assert queued("cdyn-x", settle=0.05, poll=0.01) == ["8"]  # still completing after the wait: held


def test_detach_off_slurm_is_one_line_and_trains_nothing(tmp_path):
    proc = cdyn_run(tmp_path, "-m", *TINY, "seed=0,1", "detach=true")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "detach=true" in lines[0] and "hydra/launcher=slurm" in lines[0]
    assert not list(tmp_path.rglob("result.json"))
