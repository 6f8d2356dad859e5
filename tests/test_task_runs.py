"""Every task trains end to end with the softmax preset; the leakage count reaches the record."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import compose

from cdyn_bench import NUMERICS_VERSION
from cdyn_bench.data import TaskData
from cdyn_bench.run import run
from cdyn_bench.tasks import CHARACTER_LEVEL, TASKS

ROOT = Path(__file__).resolve().parents[1]
QUICK = ("model=softmax", "model.d_model=16", "model.n_layers=1", "train.batch_size=16", "train.max_steps=30",
         "train.eval_every=15", "train.warmup_steps=1", "train.num_threads=1", "task.num_val=32",
         "task.num_test=32", "progress=false", "wandb=disabled")
# Seconds on one thread: short sequences, small vocabularies and (where the task has one) a fixed training set.
SMALL = {
    "mqar": ("task.seq_len=16", "task.vocab_size=32", "task.num_kv_pairs=2"),
    "noisy_icr": ("task.seq_len=16", "task.vocab_size=16", "task.noise_vocab_size=8", "task.num_train=64"),
    "icr": ("task.seq_len=16", "task.vocab_size=16", "task.num_train=64"),
    "fuzzy_icr": ("task.seq_len=24", "task.vocab_size=16", "task.num_train=64"),
    "selective_copy": ("task.seq_len=24", "task.num_tokens_to_copy=4", "task.num_train=0"),
    "compression": ("task.seq_len=8", "task.vocab_size=8", "task.num_train=64"),
    "memorization": ("task.seq_len=8", "task.vocab_size=64", "task.num_train=64"),
    "parity": ("task.seq_len=8", "task.test_seq_len=32"),
    "modular_sum": ("task.seq_len=8", "task.test_seq_len=32", "task.modulus=5"),
    "group_word": ("task.seq_len=8", "task.test_seq_len=32", "task.group=A5"),
    "text": ("task.seq_len=16",),
}


def check_record(result, task: str, steps: int, evals: int) -> dict:
    """The record on disk: finished, of this task, `steps` steps, `evals` finite evaluations, metrics in range."""
    record = json.loads(Path(result.path).read_text())
    assert record["status"] == "completed" and record["config"]["task"]["name"] == task
    assert record["steps"] == steps and len(record["history"]) == evals
    assert [h["step"] for h in record["history"]] == [steps * (i + 1) // evals for i in range(evals)]
    assert all(math.isfinite(h["train_loss"]) and 0 <= h["val_accuracy"] <= 1 for h in record["history"])
    assert record["metrics"]["train_loss"] == record["history"][-1]["train_loss"]
    assert 0.0 <= record["metrics"]["test_macro_accuracy"] <= 1.0 and 0.0 <= record["metrics"]["test_accuracy"] <= 1.0
    assert record["numerics_version"] == NUMERICS_VERSION
    return record


def test_every_task_has_a_small_setting():
    assert set(SMALL) == set(TASKS)


@pytest.mark.parametrize("task", SMALL)
def test_every_task_trains_a_few_steps(tmp_path, task):
    cfg = compose(f"task={task}", *QUICK, *SMALL[task])
    assert cfg.task.readout == ("last_position" if task == "compression" else "lm")
    record = check_record(run(cfg, tmp_path), task, steps=30, evals=2)
    first, last = (h["train_loss"] for h in record["history"])
    assert last < first, record["history"]
    # Text repeats itself (indentation, common lines): a test window may equal a training window from another
    # part of the corpus although the blocks are disjoint (tests/test_text.py), so the count is only recorded.
    assert record["leaked_test_sequences"] == 0 or task in CHARACTER_LEVEL


def test_leaked_test_sequences_are_recorded(tmp_path):
    # memorisation with 3 keys and 2 pairs per sequence has 9 distinct sequences: leaks are certain.
    small = ("task=memorization", "task.vocab_size=7", "task.seq_len=4", "task.num_train=6", "task.num_val=8",
             "task.num_test=20")
    cfg = compose(*QUICK, *small)
    record = check_record(run(cfg, tmp_path), "memorization", steps=30, evals=2)
    data = TaskData(cfg.task, cfg.seed, cfg.train.batch_size)
    train_rows = {r.tobytes() for r in data.train.inputs}
    expected = sum(r.tobytes() in train_rows for r in data.test.inputs)
    assert record["leaked_test_sequences"] == expected > 0


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_every_task_runs_at_cpu_scale(tmp_path, task):
    mad = (ROOT / "conf" / "mad_setting" / "cpu" / f"{task}-baseline.yaml").exists()
    setting = (f"+mad_setting/cpu={task}-baseline",) if mad else ()
    cfg = compose(f"task={task}", *setting, "model=softmax", "train.max_steps=20", "train.eval_every=10",
                  "train.num_threads=1", "progress=false", "wandb=disabled")
    check_record(run(cfg, tmp_path), task, steps=20, evals=2)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_every_task_runs_with_its_default_config(tmp_path, task):
    cfg = compose(f"task={task}", "model=softmax", "train.max_steps=3", "train.eval_every=3",
                  "task.num_val=64", "task.num_test=64", "train.num_threads=1", "progress=false",
                  "wandb=disabled")
    check_record(run(cfg, tmp_path), task, steps=3, evals=1)
