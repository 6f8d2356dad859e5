"""Optional W&B mirror of a finished run record; the local record stays the source of truth.

Every W&B run is written offline, silently, to `<directory>/wandb/offline-run-<time>-<id>`; mode online
then uploads that folder with `wandb sync`, for at most SYNC_TIMEOUT_S seconds. A record's W&B id comes
from its config hash (and sweep), so a rerun or `force=true` replaces the record's offline folder and
syncs onto the same W&B run instead of adding a second one. Any failure is one warning line on stderr.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cdyn_bench.record import RunResult

PROJECT = "cdyn-bench"
SYNC_TIMEOUT_S = 10.0


def wandb_id(config_hash: str, group: str | None = None) -> str:
    """The W&B run id of a record: 16 hex characters of its config hash, salted by the sweep when in one."""
    key = config_hash if not group else hashlib.sha256(f"{group}/{config_hash}".encode()).hexdigest()
    return key[:16]


def warn(message: str) -> None:
    print(f"warning: {message}".splitlines()[0], file=sys.stderr)


@contextlib.contextmanager
def open_run(mode: str, directory: Path, name: str, group: str | None = None, config: dict | None = None,
             job_type: str | None = None, run_id: str | None = None, what: str = "W&B mirror",
             tags: list[str] | None = None) -> Iterator[Any]:
    """Yield a quiet W&B run written offline under `directory`, or None when disabled or W&B is unusable.

    mode: offline | online | disabled; the WANDB_MODE environment variable wins when set. With a run_id,
    earlier local folders of that id under `directory` are removed first, so one folder per id remains.
    The run is finished on leaving the block, then synced when online. An exception from W&B or from the
    block is one warning line on stderr ("warning: <what> skipped: ..."), never raised.
    """
    mode = os.environ.get("WANDB_MODE", mode)
    if mode == "disabled":
        yield None
        return
    run = None
    try:
        import wandb

        directory = Path(directory)
        (directory / "wandb").mkdir(parents=True, exist_ok=True)
        if run_id:
            for pattern in (f"*run-*-{glob.escape(run_id)}", f"*run-*-{glob.escape(run_id)}-*"):
                for old in (directory / "wandb").glob(pattern):
                    shutil.rmtree(old, ignore_errors=True)
        run = wandb.init(project=PROJECT, mode="offline", dir=str(directory), id=run_id, name=name, group=group,
                         job_type=job_type, config=config, reinit="create_new", tags=tags,
                         settings=wandb.Settings(silent=True, console="off"))
    except Exception as err:  # noqa: BLE001 - W&B must never fail a run
        warn(f"{what} skipped: {type(err).__name__}: {err}")
    if run is None:
        yield None
        return
    try:
        yield run
        run.finish()
    except Exception as err:  # noqa: BLE001
        with contextlib.suppress(Exception):
            run.finish(exit_code=1)
        warn(f"{what} skipped: {type(err).__name__}: {err}")
        return
    if mode in ("online", "run"):  # anything else but disabled stays offline, as in wandb ("dryrun")
        sync_dir = Path(run.settings.sync_dir)
        if (why := sync(sync_dir, SYNC_TIMEOUT_S)) is not None:
            warn(f"W&B sync failed, kept offline ({why}); upload later with `wandb sync {sync_dir}`")


def sync(sync_dir: Path, timeout: float) -> str | None:
    """Upload one offline run folder with `wandb sync` in a subprocess; None when done, else why not."""
    cmd = [sys.executable, "-m", "wandb", "sync", str(sync_dir)]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    except OSError as err:
        return f"{type(err).__name__}: {err}"
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)  # wandb sync and the wandb-core service it started
        proc.kill()
        proc.communicate()
        return f"no answer from W&B within {timeout:g} s"
    if proc.returncode == 0 and any(sync_dir.glob("*.wandb.synced")):
        return None
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[-1] if lines else f"wandb sync exited with {proc.returncode}"


def log_files(run: Any, name: str, kind: str, files: list[Path]) -> None:
    """Log the files that exist as one W&B Artifact (type `kind`), so a W&B user finds them by the usual means."""
    import wandb

    artifact = wandb.Artifact(name, type=kind)
    for path in files:
        if Path(path).is_file():
            artifact.add_file(str(path))
    run.log_artifact(artifact)


def mirror_to_wandb(result: RunResult, mode: str, group: str | None, directory: Path) -> None:
    """Log a record's config, history and summary to W&B under `directory` (the record's folder);
    a failure is one warning line. mode: offline | online | disabled; WANDB_MODE wins when set."""
    directory = Path(directory)
    tags = [f"{key}:{result.config[key]['name']}" for key in ("model", "task") if "name" in result.config.get(key, {})]
    tags += [f"sweep:{group}"] if group else []
    with open_run(mode, directory, name=directory.name, group=group, config=result.config, job_type="train",
                  run_id=wandb_id(result.config_hash, group), tags=tags) as run:
        if run is None:
            return
        for row in result.history:
            run.log(row, step=int(row["step"]))
        run.summary.update({**result.metrics, "status": result.status, "steps": result.steps,
                            "state_size": result.state_size, "n_params": result.n_params,
                            "config_hash": result.config_hash})
        log_files(run, f"record-{result.config_hash[:12]}", "run-record", [directory / "result.json"])
