"""Progress of a sweep from the records on disk: cells done / total / skipped / diverged and an ETA."""

from __future__ import annotations

import atexit
import threading
import time
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cdyn_bench import record
from cdyn_bench.display import console
from cdyn_bench.sweep import Cell, Manifest


def record_mtime(directory: Path) -> float | None:
    path = directory / record.RESULT
    return path.stat().st_mtime if path.exists() else None


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class SweepProgress:
    """Polls the planned cells' records in a thread; one line per finished cell, a live bar unless quiet.

    A cell whose finished record exists at the start (and force is off) counts as skipped: run()
    will skip it; so does one whose record run() copied from another sweep (`reuse`). Any other cell
    counts when a record newer than the start appears.
    """

    def __init__(self, manifest: Manifest, live: bool = True, interval: float = 1.0):
        self.name, self.interval = Path(manifest.sweep_dir).name, interval
        # Cells that differ only in output-only keys share a record: count each record once.
        self.cells = list({c.run_dir: c for c in manifest.planned or []}.values())
        swept = set(manifest.swept)
        self.labels = {c.run_dir: " ".join(o for o in c.overrides if o.partition("=")[0] in swept)
                       for c in self.cells}
        self.manifest = manifest
        self.start_mtime = {c.run_dir: record_mtime(manifest.record_dir(c)) for c in self.cells}
        self.pending = {c.run_dir: c for c in self.cells}
        self.counts = {"done": 0, "skipped": 0, "diverged": 0, "new": 0}
        self.stopping, self.thread, self.started = threading.Event(), None, time.monotonic()
        self.bar = Progress(
            TextColumn("[bold]sweep {task.description}"), BarColumn(),
            TextColumn("{task.fields[counts]}  ETA {task.fields[eta]}"), TimeElapsedColumn(),
            console=console, disable=not live, transient=True,
        )
        self.task = self.bar.add_task(self.name, total=len(self.cells), counts="", eta="-")

    def finished_record(self, cell: Cell) -> record.RunResult | None:
        return record.finished(self.manifest.record_dir(cell), cell.config_hash)

    def start(self) -> SweepProgress:
        redo = []
        for cell in self.cells:
            done = None if cell.force else self.finished_record(cell)
            if done is not None:
                self._count(cell, done, skipped=True)
            elif not cell.force and (self.manifest.record_dir(cell) / record.RESULT).exists():
                redo.append(Path(cell.run_dir).name)
        if redo:
            named = ", ".join(redo[:3]) + (f" and {len(redo) - 3} more" if len(redo) > 3 else "")
            console.print(f"sweep {self.name}: {len(redo)} damaged or stale records (another numerics version or "
                          f"config) are run again: {named}")
        self.started = time.monotonic()
        self.bar.start()
        self._refresh()
        self.thread = threading.Thread(target=self._loop, name="sweep-progress", daemon=True)
        self.thread.start()
        atexit.register(self.stop)
        return self

    def _loop(self) -> None:
        while not self.stopping.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        """Count the cells whose record appeared since the start."""
        for cell in list(self.pending.values()):
            mtime = record_mtime(self.manifest.record_dir(cell))
            if mtime is not None and mtime != self.start_mtime[cell.run_dir]:
                done = self.finished_record(cell)
                if done is not None:
                    self._count(cell, done, skipped=False)
        self._refresh()

    def _count(self, cell: Cell, result: record.RunResult, skipped: bool) -> None:
        if self.pending.pop(cell.run_dir, None) is None:
            return
        skipped = skipped or bool(result.reused_from)  # a copy of another sweep's record ran nowhere now
        self.counts["done"] += 1
        self.counts["skipped" if skipped else "new"] += 1
        self.counts["diverged"] += result.status == "diverged"
        if not skipped:
            self._print_cell(cell, result)

    def _print_cell(self, cell: Cell, result: record.RunResult) -> None:
        if result.status == "diverged":
            outcome = f"[red]diverged[/] at step {result.diverged_at}"
        else:
            outcome = f"{result.status} test_accuracy={result.metrics.get('test_accuracy', float('nan')):.4f}"
        console.print(f"[{self.counts['done']}/{len(self.cells)}] {Path(cell.run_dir).name} {outcome} "
                      f"{result.wall_seconds:.1f}s {self.labels[cell.run_dir]}"
                      f"  (ETA {format_eta(self.eta())})", highlight=False, soft_wrap=True)

    def eta(self) -> float | None:
        """Seconds left at the rate cells have finished since the start (workers in parallel included)."""
        if not self.counts["new"]:
            return None
        return (time.monotonic() - self.started) / self.counts["new"] * len(self.pending)

    def _refresh(self) -> None:
        c = self.counts
        counts = f"{c['done']}/{len(self.cells)} done, {c['skipped']} skipped, {c['diverged']} diverged"
        self.bar.update(self.task, completed=c["done"], counts=counts, eta=format_eta(self.eta()))

    def stop(self) -> None:
        """Stop polling, count what finished last, and print one summary line."""
        if self.thread is None or self.stopping.is_set():
            return
        self.stopping.set()
        self.thread.join()
        self.poll()
        self.bar.stop()
        c, elapsed = self.counts, format_eta(time.monotonic() - self.started)
        console.print(f"sweep {self.name}: {c['done']}/{len(self.cells)} cells done ({c['skipped']} skipped, "
                      f"{c['diverged']} diverged, {len(self.pending)} not done) in {elapsed}",
                      highlight=False, soft_wrap=True)
