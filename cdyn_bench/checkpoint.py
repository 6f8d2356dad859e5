"""Training checkpoints: the whole training state, saved atomically every N steps or on SIGUSR2/SIGTERM, so a
killed or preempted run resumes where it stopped and ends with the numbers an uninterrupted run would have."""

from __future__ import annotations

import io
import signal
from pathlib import Path
from typing import Any

import torch

from cdyn_bench.atomic import write_atomic

CHECKPOINT = "checkpoint.pt"
# Signals that ask a run to checkpoint and stop: SLURM's warning before a time limit or preemption
# (submitit's --signal=USR2@...), and the TERM of a cancel or a kill without -9.
STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


class Checkpointer:
    """Saves and loads one run's training state at `path`; `every` steps (0: only on a stop signal).

    Used as a context manager, it catches STOP_SIGNALS (in the main thread) and sets `stop_requested`;
    the training loop then saves at the end of its current step and stops, and on leaving, the signal goes
    on to the handler that was installed before (none in a plain run; submitit's requeue in a SLURM job).
    """

    def __init__(self, path: Path, every: int, identity: str):
        self.path, self.every, self.identity = Path(path), every, identity
        self.stop_requested: int | None = None
        self.resumed_at: int | None = None  # the step a loaded state had reached
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Checkpointer:
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._request_stop)
            except ValueError:  # not the main thread (a launcher's worker thread): no signal handling
                break
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        # The state is saved: a handler that was there before (submitit's, in a SLURM job) now does its part,
        # which for SIGUSR2 is to requeue the job, so that the requeued job resumes from this checkpoint.
        previous = self._previous.get(self.stop_requested)
        if callable(previous):
            previous(self.stop_requested, None)

    def _request_stop(self, signum: int, frame) -> None:
        self.stop_requested = signum

    def due(self, step: int) -> bool:
        return self.stop_requested is not None or (self.every > 0 and step % self.every == 0)

    def save(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save({"identity": self.identity, **state}, buffer)
        write_atomic(self.path, lambda f: f.write(buffer.getvalue()), mode="wb")

    def load(self) -> dict[str, Any] | None:
        """The saved state of this run (same identity), or None (none saved, another run's, or unreadable)."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception:  # a damaged checkpoint costs the steps since the start, never the run
            return None
        if state.get("identity") != self.identity:
            return None
        self.resumed_at = state["outcome"]["steps"]
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
