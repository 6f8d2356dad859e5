"""Task data: typed task configs and their checks, read-out leak checks, disjoint splits, epochs, leakage count,
cache."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cdyn_bench import data
from cdyn_bench.data import LeakCheck, TaskData, split_params
from cdyn_bench.registry import ConfigError
from cdyn_bench.task_config import TASK_CONFIGS, TaskConfig, check_readout, task_config
from cdyn_bench.tasks import TASKS

ICR = dict(name="icr", num_train=64, num_val=16, num_test=16, loss_on="all", vocab_size=16, seq_len=16)
# MQAR at 64 tokens over 256 ids: two equal sequences are astronomically unlikely, so any shared one is a leak.
MQAR = dict(name="mqar", num_train=300, num_val=200, num_test=300)


def task(**overrides) -> TaskConfig:
    """The checked task config of ICR with `overrides` (the conftest fixture keeps the cache in tmp_path)."""
    cfg = task_config({**ICR, **overrides})
    cfg.check()
    return cfg


def rows(*arrays: np.ndarray) -> set[bytes]:
    return {r.tobytes() for a in arrays for r in a}


def test_data_keys_and_generator_params_are_split():
    cfg = task(readout="lm")
    assert type(cfg) is TASK_CONFIGS["icr"]
    assert (cfg.name, cfg.num_train, cfg.loss_on, cfg.readout) == ("icr", 64, "all", "lm")
    assert cfg.params == {"vocab_size": 16, "seq_len": 16}


def test_missing_generator_parameters_take_the_generators_defaults():
    cfg = task_config({"name": "mqar", "seq_len": 32, "power_a": 1})
    assert cfg.params == {"vocab_size": 256, "seq_len": 32, "num_kv_pairs": 4, "power_a": 1.0,
                          "random_non_queries": True}
    assert (cfg.num_train, cfg.num_val, cfg.num_test, cfg.loss_on, cfg.readout) == (0, 500, 1000, "scored", "lm")


@pytest.mark.parametrize("overrides, key", [
    (dict(readout="decoder"), "task.readout"),
    (dict(loss_on="some"), "task.loss_on"),
    (dict(num_val=0), "task.num_val"),
    (dict(frac_noise=0.1), "task.frac_noise"),
    (dict(seq_len="long"), "task.seq_len"),
    (dict(seq_len=15), "task.seq_len"),
    (dict(seq_len=True), "task.seq_len"),
    (dict(num_train=1.5), "task.num_train"),
    (dict(name="icl"), "unknown task 'icl'. Did you mean icr"),
], ids=lambda x: str(x))
def test_bad_task_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=re.escape(key)) as err:
        task(**overrides)
    assert "\n" not in str(err.value)


def test_a_causal_lm_may_not_read_the_answer():
    with pytest.raises(ConfigError, match="task.readout=lm: 100% of scored targets"):
        task_config(dict(name="compression", vocab_size=8, seq_len=8, readout="lm")).check()
    sample = task_config(dict(name="compression", vocab_size=8, seq_len=8, readout="last_position")).check()
    assert sample.inputs.shape == (16, 8)


def test_the_last_position_readout_is_only_for_reconstruction():
    with pytest.raises(ConfigError, match="task.readout=last_position"):
        task(readout="last_position")
    for name in TASKS:
        examples = TASKS[name](32, np.random.default_rng(0))
        check_readout("last_position" if name == "compression" else "lm", examples)


def test_splits_are_reproducible_and_independent_of_each_others_sizes():
    a, b = TaskData(task(), seed=0, batch_size=8), TaskData(task(), seed=0, batch_size=8)
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(a, split).inputs, getattr(b, split).inputs)
    bigger = TaskData(task(num_val=32, num_test=48), seed=0, batch_size=8)
    assert np.array_equal(a.train.inputs, bigger.train.inputs)


def test_train_val_and_test_splits_share_no_sequence():
    d = TaskData(task_config(MQAR), seed=0, batch_size=8)
    train, val, test = (rows(s.inputs) for s in (d.train, d.val, d.test))
    assert (len(train), len(val), len(test)) == (300, 200, 300)
    assert not train & val and not train & test and not val & test
    assert d.leaked == 0
    other = TaskData(task_config(MQAR), seed=1, batch_size=8)
    assert not rows(other.test.inputs) & test and not rows(other.train.inputs) & train


def test_fresh_training_batches_share_no_sequence_with_each_other_or_the_test_set():
    d = TaskData(task_config({**MQAR, "num_train": 0}), seed=0, batch_size=50)
    assert d.train is None
    batches = [d.train_batch()[0] for _ in range(6)]
    assert len(rows(*batches)) == 300 and not rows(*batches) & rows(d.val.inputs, d.test.inputs)
    assert d.leaked == 0


def test_evaluation_splits_are_built_as_the_tasks_test_set_where_it_has_one():
    fuzzy = task(name="fuzzy_icr", seq_len=24)
    assert [split_params(fuzzy, s) for s in ("train", "val", "test")] == [
        {"test_split": False}, {"test_split": True}, {"test_split": True}]
    assert split_params(task(), "test") == {}
    assert data.cache_key(fuzzy, "val", 0, 16) != data.cache_key(fuzzy, "train", 0, 16)


def test_a_fixed_training_set_is_seen_once_per_epoch():
    d = TaskData(task(num_train=40), seed=0, batch_size=8)
    seen = np.concatenate([d.train_batch()[0] for _ in range(5)])
    assert len(seen) == 40 and rows(seen) == rows(d.train.inputs) and len(rows(seen)) == 40


def test_loss_targets_follow_loss_on():
    inputs, targets = TaskData(task(loss_on="all"), seed=0, batch_size=8).train_batch()
    assert (targets != -100).all()
    inputs, targets = TaskData(task(loss_on="scored"), seed=0, batch_size=8).train_batch()
    assert (targets != -100).sum() < targets.size


def brute_force_leaks(train: np.ndarray, test: np.ndarray) -> int:
    return sum(any(np.array_equal(t, r) for r in train) for t in test)


def test_leak_check_counts_test_sequences_found_in_training():
    test = np.array([[1, 2], [1, 2], [3, 4], [5, 6]])
    check = LeakCheck(test)
    check.add(np.array([[1, 2], [1, 2], [7, 8]]))
    assert check.count == 2
    check.add(np.array([[3, 4], [1, 2]]))
    assert check.count == 3 == brute_force_leaks(np.array([[1, 2], [3, 4]]), test)


def test_leakage_of_a_small_task_matches_brute_force():
    # memorisation with 3 keys and 2 pairs has only 9 distinct sequences: most test rows leak.
    cfg = task_config(dict(name="memorization", vocab_size=7, seq_len=4, num_train=6, num_val=8, num_test=20))
    d = TaskData(cfg, seed=0, batch_size=4)
    assert 0 < d.leaked == brute_force_leaks(d.train.inputs, d.test.inputs) < 20


def test_fresh_batches_are_checked_for_leaks():
    cfg = task_config(dict(name="memorization", vocab_size=7, seq_len=4, num_train=0, num_test=20))
    d = TaskData(cfg, seed=0, batch_size=4)
    seen = []
    for _ in range(10):
        seen.append(d.train_batch()[0])
        assert d.leaked == brute_force_leaks(np.concatenate(seen), d.test.inputs)
    assert d.leaked > 0


def test_slow_generation_is_cached_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CACHE_MIN_SECONDS", 0.0)
    first = TaskData(task(), seed=0, batch_size=8)
    files = sorted((tmp_path / "cache" / "tasks").glob("icr-*.npz"))
    assert len(files) == 3
    cfg = task()
    monkeypatch.setattr(TaskConfig, "generate", lambda *a, **k: pytest.fail("generated instead of read"))
    again = TaskData(cfg, seed=0, batch_size=8)
    for split in ("train", "val", "test"):
        for field in ("inputs", "targets", "train_targets"):
            assert np.array_equal(getattr(getattr(first, split), field), getattr(getattr(again, split), field))
    assert np.array_equal(first.train_batch()[0], again.train_batch()[0])


def test_cache_key_covers_what_changes_the_data():
    cfg = task()
    base = data.cache_key(cfg, "test", 0, 16)
    assert base == data.cache_key(task(), "test", 0, 16)
    changed = [data.cache_key(task(seq_len=32), "test", 0, 16), data.cache_key(cfg, "val", 0, 16),
               data.cache_key(cfg, "test", 1, 16), data.cache_key(cfg, "test", 0, 17),
               data.cache_key(task(name="noisy_icr", vocab_size=32, frac_noise=0.2), "test", 0, 16)]
    assert len({base, *changed}) == 6


def test_fast_generation_is_not_cached_and_off_disables(tmp_path, monkeypatch):
    TaskData(task(), seed=0, batch_size=8)
    assert not list((tmp_path / "cache").glob("**/*.npz"))
    monkeypatch.setattr(data, "CACHE_MIN_SECONDS", 0.0)
    monkeypatch.setenv("CDYN_BENCH_CACHE", "off")
    TaskData(task(), seed=0, batch_size=8)
    assert not (tmp_path / "cache").exists()


def test_a_corrupt_cache_file_is_regenerated(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CACHE_MIN_SECONDS", 0.0)
    first = TaskData(task(), seed=0, batch_size=8)
    for path in (tmp_path / "cache" / "tasks").glob("*.npz"):
        path.write_bytes(b"not a zip file")
    again = TaskData(task(), seed=0, batch_size=8)
    assert np.array_equal(first.test.inputs, again.test.inputs)
