"""Terminal output of a run: a rich live progress line while training, a summary at the end."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cdyn_bench.record import RunResult

console = Console()


class LiveDisplay:
    """Step, train loss, validation accuracy, tokens/s and ETA (to max_steps) on one live line."""

    def __init__(self, title: str, max_steps: int, enabled: bool = True):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(),
            TextColumn("step {task.completed:>5.0f}/{task.total:.0f}"),
            TextColumn("loss {task.fields[loss]}  val acc {task.fields[val]}  {task.fields[speed]} tok/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=not enabled, transient=False,
        )
        self.task = self.progress.add_task(title, total=max_steps, loss="-", val="-", speed="-")

    def __enter__(self) -> LiveDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, step: int, train_loss: float, val_accuracy: float | None, tokens_per_s: float) -> None:
        fields = {"loss": f"{train_loss:.4f}", "speed": f"{tokens_per_s:,.0f}"}
        if val_accuracy is not None:
            fields["val"] = f"{val_accuracy:.4f}"
        self.progress.update(self.task, completed=step, **fields)


def print_summary(result: RunResult) -> None:
    """A short table: status, accuracies, steps, time, size and where the record is."""
    m = result.metrics
    table = Table(title="skipped: finished record found" if result.skipped else "run finished", show_header=False)
    bits = [("test bits per char", f"{m['test_bits_per_char']:.4f}")] if "test_bits_per_char" in m else []
    rows = [
        ("status", result.status + (f" at step {result.diverged_at}" if result.diverged_at else "")),
        *bits,
        ("test accuracy", f"{m.get('test_accuracy', float('nan')):.4f}"),
        ("test macro accuracy", f"{m.get('test_macro_accuracy', float('nan')):.4f}"),
        ("val accuracy", f"{m.get('val_accuracy', float('nan')):.4f}"),
        ("steps", str(result.steps)),
        ("wall time", f"{result.wall_seconds:.1f} s ({result.tokens_per_s:,.0f} tokens/s)"),
        ("parameters", f"{result.n_params:,}"),
        ("state size", f"{result.state_size:,} floats/sequence"),
        ("record", result.path),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
