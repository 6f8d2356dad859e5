"""A SLURM sweep whose jobs can never start ends with one line naming the reason and the keys to change.

SLURM keeps a job PENDING for reasons that clear by themselves (Resources, Priority, a busy node) and for
reasons that cannot while the job asks for what it asks (more CPUs, memory or time than the partition, the
QOS or the account allows). submitit waits for either kind in silence, forever. While a sweep's jobs run,
`PendingWatch` asks squeue every `poll` seconds for the sweep's jobs (named after it: the `slurm` preset's
`cdyn-<sweep_name>`, submitted since the watch began); when one has pended for `grace` seconds with a reason
in NEVER, it cancels the sweep's jobs, interrupts the waiting launcher and keeps the line to print.
"""

from __future__ import annotations

import _thread
import shutil
import subprocess
import threading
import time

# squeue reasons that hold until the request changes, and which launcher keys change it.
NEVER = {
    "PartitionConfig": "the request exceeds what the partition offers (CPUs, memory or nodes per job)",
    "PartitionNodeLimit": "the request needs more nodes than the partition allows",
    "PartitionTimeLimit": "timeout_min is above the partition's time limit",
    "QOSMaxCpuPerJobLimit": "the QOS allows fewer CPUs per job",
    "QOSMaxMemoryPerJob": "the QOS allows less memory per job",
    "QOSMaxWallDurationPerJobLimit": "timeout_min is above the QOS's time limit",
    "AssocMaxCpuPerJobLimit": "the account allows fewer CPUs per job",
    "AssocMaxWallDurationPerJobLimit": "timeout_min is above the account's time limit",
    "InvalidAccount": "the account is not valid on this cluster",
    "InvalidQOS": "the QOS is not valid for this account",
    "BadConstraints": "the constraints can never be met",
}
KEYS = "hydra.launcher.cpus_per_task, hydra.launcher.mem_gb, hydra.launcher.timeout_min, hydra.launcher.partition"


def pending(name: str) -> list[tuple[str, str]]:
    """(job id, reason) of the PENDING jobs called `name` (array tasks collapsed by squeue), [] if squeue fails."""
    try:
        out = subprocess.run(["squeue", "-h", "-n", name, "-t", "PENDING", "-o", "%i|%r"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    rows = [line.split("|", 1) for line in out.stdout.splitlines() if "|" in line]
    return [(job.strip(), reason.strip()) for job, reason in rows]


def queued(name: str, settle: float = 90.0, poll: float = 3.0) -> list[str]:
    """Ids of the jobs called `name` that SLURM still holds (pending, running, suspended), [] if squeue fails.

    A job that is only COMPLETING (a cancelled or finished job whose processes are still being reaped, and whose
    run may still be writing its checkpoint) is waited for, up to `settle` seconds, and then counted as held."""
    deadline = time.monotonic() + settle
    while True:
        try:
            out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i|%t"], capture_output=True, text=True,
                                 timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return []
        rows = [line.split("|", 1) for line in out.stdout.splitlines() if "|" in line]
        jobs = [job.strip() for job, _ in rows]
        if not jobs or any(state.strip() != "CG" for _, state in rows) or time.monotonic() >= deadline:
            return jobs
        time.sleep(poll)


class PendingWatch:
    """Context manager around a SLURM launch: `message` is the line to print when it gave up (else None).

    With detach, it also ends the wait as soon as squeue shows the sweep's jobs (they are submitted):
    `submitted` then holds their ids, and the sweep returns while SLURM runs them."""

    def __init__(self, name: str, grace: float = 30.0, poll: float = 5.0, detach: bool = False):
        self.name, self.grace, self.poll, self.detach = name, grace, poll, detach
        self.message: str | None = None
        self.submitted: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> PendingWatch:
        if shutil.which("squeue") is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def _watch(self) -> None:
        first_seen: dict[str, float] = {}
        while not self._stop.wait(1.0 if self.detach else self.poll):
            now = time.monotonic()
            if self.detach and (jobs := queued(self.name, settle=0)):
                self.submitted = jobs
                _thread.interrupt_main()
                return
            for job, reason in pending(self.name):
                if reason not in NEVER:
                    first_seen.pop(job, None)
                    continue
                if now - first_seen.setdefault(job, now) >= self.grace:
                    self.give_up(job, reason)
                    return

    def give_up(self, job: str, reason: str) -> None:
        self.message = (f"SLURM keeps job {job} ({self.name}) PENDING with Reason={reason}: {NEVER[reason]}; it "
                        f"cannot start as asked, so its jobs were cancelled. Change {KEYS}")
        subprocess.run(["scancel", "-n", self.name], capture_output=True, timeout=30)
        if not self._stop.is_set():
            _thread.interrupt_main()  # the launcher waits in the main thread; without accounting it would not return


class NoWatch:
    """The watch of a launcher that is not SLURM: never fires."""

    message = None
    submitted: list[str] = []

    def __enter__(self) -> NoWatch:
        return self

    def __exit__(self, *exc) -> None:
        return None
