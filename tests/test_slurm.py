"""A real SLURM cluster (scripts/slurm_local.sh: slurmctld, slurmd, slurmdbd with MariaDB, munge, in a network
namespace whose only interface is the loopback): a sweep through the project's `slurm` preset comes back, a
resumed sweep submits only the missing cells, a cell cancelled while it runs ends its sweep with one line (and
the same command finishes it), a job signalled SIGUSR2 is requeued and continues from its checkpoint, a detached
sweep returns at once and the same command finishes it, and a sweep whose jobs can never start ends in one line. Slow (about 3 minutes with the install); run with `pytest -m slow tests/test_slurm.py` (.ci/run does)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import BIN, TINY, cli_env

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm_local.sh"
PORTS = ("6827", "6828", "6829")


def usable() -> str | None:
    """Why this machine cannot run the cluster, or None."""
    if os.geteuid() != 0:
        return "needs root (daemons and a network namespace)"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "no slurm and no apt-get to install it"
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        return "cannot make a network namespace"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if (why := usable()) is not None:
        pytest.skip(why)
    state = tmp_path_factory.mktemp("slurm")
    start = subprocess.run([str(SCRIPT), "start", str(state)], capture_output=True, text=True, timeout=600)
    if start.returncode == 3:
        pytest.skip("the slurm packages could not be installed here")
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        yield state
    finally:
        subprocess.run([str(SCRIPT), "stop", str(state)], capture_output=True, timeout=120)
        assert subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode != 0


def sweep(cluster: Path, cwd: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**cli_env(cwd), "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run([str(SCRIPT), "run", str(cluster), str(BIN / "cdyn-run"), "-m", "hydra/launcher=slurm",
                           *TINY, *overrides], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def jobs(proc: subprocess.CompletedProcess) -> int:
    return sum("[HYDRA] \t#" in line for line in (proc.stdout + proc.stderr).splitlines())


def test_daemons_listen_only_inside_their_loopback_namespace(cluster):
    host = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
    inside = subprocess.run([str(SCRIPT), "run", str(cluster), "ss", "-ltn"], capture_output=True, text=True).stdout
    assert not any(f":{port} " in host for port in PORTS) and all(f":{port} " in inside for port in PORTS)
    addresses = subprocess.run([str(SCRIPT), "run", str(cluster), "ip", "-4", "-o", "addr"], capture_output=True,
                               text=True).stdout
    assert all(" lo " in line for line in addresses.splitlines())


def test_a_sweep_comes_back_and_a_resume_submits_only_the_missing_cells(cluster, tmp_path):
    first = sweep(cluster, tmp_path, "model=softmax,gated", "seed=0,1", "sweep_name=grid")
    assert first.returncode == 0, first.stderr[-2000:]
    assert len(list((tmp_path / "outputs" / "sweeps" / "grid").rglob("result.json"))) == 4 and jobs(first) == 4
    again = sweep(cluster, tmp_path, "model=softmax,gated", "seed=0,1,2", "sweep_name=grid")
    assert again.returncode == 0 and jobs(again) == 2
    assert len(list((tmp_path / "outputs" / "sweeps" / "grid").rglob("result.json"))) == 6


def test_a_request_the_node_can_never_meet_ends_with_one_line_naming_the_reason(cluster, tmp_path):
    start = time.monotonic()
    proc = sweep(cluster, tmp_path, "hydra.launcher.cpus_per_task=8", "sweep_name=toobig", timeout=240)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "[HYDRA]" not in line]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(lines) == 1 and "PENDING with Reason=" in lines[0] and "hydra.launcher.cpus_per_task" in lines[0], lines
    assert time.monotonic() - start < 200
    assert inside(cluster, "squeue", "-h", "-n", "cdyn-toobig").stdout.strip() == ""  # cancelled, not left queued


LONG = ("train.max_steps=3000", "train.eval_every=1000", "train.target_accuracy=2")  # a run of a minute or more


def inside(cluster: Path, *argv: str) -> subprocess.CompletedProcess:
    """A command in the cluster's namespace (squeue, scancel)."""
    return subprocess.run([str(SCRIPT), "run", str(cluster), *argv], capture_output=True, text=True, check=True)


def while_it_runs(cluster: Path, cwd: Path, name: str, act, timeout: int = 180) -> tuple[int, str]:
    """Start a one-cell sweep `name` of LONG runs, call act() once its run has started, and return (the sweep's exit
    status, its stderr), waiting at most `timeout` seconds after act()."""
    env = {**cli_env(cwd), "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin"}
    argv = [str(SCRIPT), "run", str(cluster), str(BIN / "cdyn-run"), "-m", "hydra/launcher=slurm", *TINY, *LONG,
            f"sweep_name={name}"]
    with open(cwd / "out.log", "w") as out, open(cwd / "err.log", "w") as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not list((cwd / "outputs" / "sweeps" / name).rglob("progress.json")):
                assert time.monotonic() < deadline and proc.poll() is None, "the run never started"
                time.sleep(2)
            act()
            code = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
    return code, (cwd / "err.log").read_text()


def test_a_cancelled_cell_ends_the_sweep_with_one_line_and_a_rerun_finishes_it(cluster, tmp_path):
    code, stderr = while_it_runs(cluster, tmp_path, "cancel", lambda: inside(cluster, "scancel", "-n", "cdyn-cancel"))
    lines = [line for line in stderr.splitlines() if line.strip() and "[HYDRA]" not in line]
    assert code != 0 and "Traceback" not in stderr and len(lines) == 1, stderr[-2000:]
    rerun = sweep(cluster, tmp_path, *LONG, "sweep_name=cancel")  # the same cell, resumed
    assert rerun.returncode == 0 and jobs(rerun) == 1, rerun.stderr[-2000:]
    assert len(list((tmp_path / "outputs" / "sweeps" / "cancel").rglob("result.json"))) == 1


def test_a_signalled_job_is_requeued_and_resumes_from_its_checkpoint(cluster, tmp_path):
    """SIGUSR2 (SLURM's warning before a time limit or preemption) makes the run checkpoint; submitit then requeues
    the job, which resumes from the checkpoint, and the sweep comes back complete with no rerun by hand."""
    code, stderr = while_it_runs(cluster, tmp_path, "requeue", timeout=400,
                                 act=lambda: inside(cluster, "scancel", "--signal=USR2", "-n", "cdyn-requeue"))
    logs = "".join(p.read_text() for p in (tmp_path / "outputs" / "sweeps" / "requeue").rglob("*_log.*"))
    assert code == 0, stderr[-2000:]
    assert "DUE TO JOB REQUEUE" in logs and "continued from its checkpoint at step" in logs, logs[-3000:]
    (found,) = (tmp_path / "outputs" / "sweeps" / "requeue").rglob("result.json")
    assert '"steps": 3000' in found.read_text()


def test_a_detached_sweep_returns_at_once_and_the_same_command_finishes_it(cluster, tmp_path):
    cells = ("model=softmax,gated", "train.max_steps=300", "sweep_name=detached")
    start = time.monotonic()
    first = sweep(cluster, tmp_path, "detach=true", *cells)
    assert first.returncode == 0 and "submitted 2 cells as SLURM job" in first.stdout, first.stderr[-2000:]
    assert time.monotonic() - start < 60
    busy = sweep(cluster, tmp_path, *cells)  # while its jobs are queued or running: refused, nothing submitted
    lines = [line for line in busy.stderr.splitlines() if line.strip() and "[HYDRA]" not in line]
    assert busy.returncode != 0 and len(lines) == 1 and "SLURM still holds job" in lines[0] and jobs(busy) == 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and inside(cluster, "squeue", "-h", "-n", "cdyn-detached").stdout.strip():
        time.sleep(5)
    done = sweep(cluster, tmp_path, *cells)
    assert done.returncode == 0 and jobs(done) == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "outputs" / "sweeps" / "detached").rglob("result.json"))) == 2
