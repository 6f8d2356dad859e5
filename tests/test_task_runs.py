"""Every task trains end to end with the softmax preset; the leakage count reaches the record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_run

from cdyn_bench.data import TaskConfig, TaskData
from cdyn_bench.record import RESULT
from cdyn_bench.run import run
from cdyn_bench.tasks import TASKS

QUICK = ("model=softmax", "model.d_model=16", "model.n_layers=1", "train.batch_size=8", "train.max_steps=6",
         "train.eval_every=3", "train.warmup_steps=1", "train.num_threads=1", "progress=false", "wandb=disabled")
SMALL = {
    "compression": ("task.seq_len=8", "task.vocab_size=8", "task.num_train=64", "task.num_val=16", "task.num_test=16"),
    "selective_copy": ("task.seq_len=24", "task.num_tokens_to_copy=4", "task.num_train=0", "task.num_val=16",
                       "task.num_test=16"),
}


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("CDYN_BENCH_CACHE", str(tmp_path / "cache"))


def check_record(result, task: str) -> dict:
    record = json.loads((Path(result.run_dir) / RESULT).read_text())
    assert record["status"] == "completed" and record["config"]["task"]["name"] == task
    assert 0.0 <= record["metrics"]["test_accuracy"] <= 1.0
    assert 0.0 <= record["metrics"]["test_macro_accuracy"] <= 1.0
    return record


@pytest.mark.parametrize("task", SMALL)
def test_task_runs_with_tiny_settings(tmp_path, task):
    result = run(compose_run(f"task={task}", *QUICK, *SMALL[task]), tmp_path)
    record = check_record(result, task)
    assert record["steps"] == 6 and record["leaked_test_sequences"] == 0


def test_compression_trains_the_last_position_decoder(tmp_path):
    cfg = compose_run("task=compression", *QUICK, *SMALL["compression"])
    assert cfg.task["readout"] == "last_position"
    result = run(cfg, tmp_path)
    lm_params = run(compose_run("task=mqar", *QUICK, "task.vocab_size=8", "task.seq_len=8",
                                "task.num_kv_pairs=2", "task.num_val=8", "task.num_test=8"), tmp_path).n_params
    # Same backbone and vocabulary: the decoder's parameters are the difference.
    assert result.n_params > lm_params


def test_leaked_test_sequences_are_recorded(tmp_path):
    # memorisation with 3 keys and 2 pairs per sequence has 9 distinct sequences: leaks are certain.
    small = ("task=memorization", "task.vocab_size=7", "task.seq_len=4", "task.num_train=6", "task.num_val=8",
             "task.num_test=20")
    cfg = compose_run(*QUICK, *small)
    record = check_record(run(cfg, tmp_path), "memorization")
    data = TaskData(TaskConfig.from_dict(cfg.task), cfg.seed, cfg.train.batch_size)
    train_rows = {r.tobytes() for r in data.train.inputs}
    expected = sum(r.tobytes() in train_rows for r in data.test.inputs)
    assert record["leaked_test_sequences"] == expected > 0


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_every_task_runs_at_cpu_scale(tmp_path, task):
    setting = () if task == "mqar" else (f"+mad_setting/cpu={task}-baseline",)
    cfg = compose_run(f"task={task}", *setting, "model=softmax", "train.max_steps=20", "train.eval_every=10",
                      "train.num_threads=1", "progress=false", "wandb=disabled")
    record = check_record(run(cfg, tmp_path), task)
    assert record["steps"] == 20 and np.isfinite(record["metrics"]["train_loss"])


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_every_task_runs_with_its_default_config(tmp_path, task):
    cfg = compose_run(f"task={task}", "model=softmax", "train.max_steps=3", "train.eval_every=3",
                      "task.num_val=64", "task.num_test=64", "train.num_threads=1", "progress=false",
                      "wandb=disabled")
    assert check_record(run(cfg, tmp_path), task)["steps"] == 3
