"""Checkpoints: a run killed mid-way resumes from its last checkpoint and ends with the record an uninterrupted
run writes (same machine and threads); a stop signal checkpoints and stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import torch

from cdyn_bench import record
from cdyn_bench.checkpoint import CHECKPOINT
from cdyn_bench.run import run
from helpers import BIN, TINY, cli_env, compose

# Timings differ between any two runs; everything else in a record must not.
TIMINGS = (*record.TIMING_FIELDS, *record.LOCAL_FIELDS, "versions")
RUN = (*TINY, "train.max_steps=40", "train.eval_every=10", "train.checkpoint_every=10")


def numbers(result: record.RunResult) -> dict:
    out = {k: v for k, v in record.asdict(result).items() if k not in TIMINGS}
    out["history"] = [{k: v for k, v in row.items() if k != "seconds"} for row in result.history]
    return out


def killed_after_checkpoint(monkeypatch, step: int) -> None:
    """From now on a run stops right after saving its step-`step` checkpoint, as a SIGKILL would (nothing after it
    is kept); monkeypatch.undo() ends it."""
    import cdyn_bench.checkpoint as checkpoint

    real = checkpoint.Checkpointer.save

    def save_then_die(self, state):
        real(self, state)
        if state["outcome"]["steps"] == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_die)


def test_a_run_resumed_from_its_checkpoint_ends_as_an_uninterrupted_run(tmp_path, monkeypatch):
    whole = run(compose(*RUN, "train.target_accuracy=2"), tmp_path / "a" / "runs")
    assert not list((tmp_path / "a").rglob(CHECKPOINT))  # removed once the record is written
    cfg = compose(*RUN, "train.target_accuracy=2")
    killed_after_checkpoint(monkeypatch, 20)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "b" / "runs")
    assert list((tmp_path / "b").rglob(CHECKPOINT)) and not list((tmp_path / "b").rglob(record.RESULT))
    monkeypatch.undo()
    resumed = run(cfg, tmp_path / "b" / "runs")
    assert numbers(resumed) == numbers(whole)


def test_sigusr2_checkpoints_and_exits_cleanly_and_the_rerun_finishes_from_there(tmp_path):
    args = [str(BIN / "cdyn-run"), *TINY, "train.max_steps=400", "train.eval_every=50", "train.checkpoint_every=0",
            "train.target_accuracy=2", f"out_dir={tmp_path}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=cli_env(tmp_path))
    deadline = time.monotonic() + 120
    while not list(tmp_path.rglob(record.PROGRESS)) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGUSR2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "interrupted by signal" in out and not list(tmp_path.rglob(record.RESULT))
    saved = torch.load(next(tmp_path.rglob(CHECKPOINT)), weights_only=False)["outcome"]["steps"]
    assert 50 <= saved < 400
    finish = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=cli_env(tmp_path), timeout=300)
    assert finish.returncode == 0, finish.stderr
    result = record.read_result(next(tmp_path.rglob(record.RESULT)))
    assert result.steps == 400 and result.history[0]["step"] == 50 and not list(tmp_path.rglob(CHECKPOINT))
