"""Optional W&B mirror of a finished run record; the local record stays the source of truth."""

from __future__ import annotations

import os
import sys

from cdyn_bench.record import RunResult


def mirror_to_wandb(result: RunResult, mode: str, group: str | None = None) -> None:
    """Log config, history and summary to W&B; any failure is one warning line, never an error.

    mode: offline | online | disabled; the WANDB_MODE environment variable wins when set.
    """
    mode = os.environ.get("WANDB_MODE", mode)
    if mode == "disabled":
        return
    try:
        import wandb

        run = wandb.init(project="cdyn-bench", mode=mode, config=result.config, group=group,
                         name=os.path.basename(result.run_dir), dir=result.run_dir, reinit=True,
                         settings=wandb.Settings(quiet=True))
        for row in result.history:
            run.log(row, step=int(row["step"]))
        run.summary.update({**result.metrics, "status": result.status, "steps": result.steps,
                            "state_size": result.state_size, "n_params": result.n_params})
        run.finish()
    except Exception as err:  # noqa: BLE001 - W&B must never fail a run
        print(f"warning: W&B mirror skipped: {type(err).__name__}: {err}".splitlines()[0], file=sys.stderr)
