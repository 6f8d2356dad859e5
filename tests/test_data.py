"""Task data: config checks, read-out leak checks, split streams, epochs, leakage count, cache."""

from __future__ import annotations

import numpy as np
import pytest

from cdyn_bench import data
from cdyn_bench.data import LeakCheck, TaskConfig, TaskData, check_readout
from cdyn_bench.registry import ConfigError
from cdyn_bench.tasks import TASKS

ICR = dict(name="icr", num_train=64, num_val=16, num_test=16, loss_on="all", vocab_size=16, seq_len=16)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("CDYN_BENCH_CACHE", str(tmp_path / "cache"))


def task(**overrides) -> TaskConfig:
    return TaskConfig.from_dict({**ICR, **overrides})


def test_data_keys_and_generator_params_are_split():
    cfg = task(readout="lm")
    assert (cfg.name, cfg.num_train, cfg.loss_on, cfg.readout) == ("icr", 64, "all", "lm")
    assert cfg.params == {"vocab_size": 16, "seq_len": 16}


@pytest.mark.parametrize("overrides, key", [
    (dict(readout="decoder"), "task.readout"),
    (dict(loss_on="some"), "task.loss_on"),
    (dict(num_val=0), "task.num_val"),
    (dict(frac_noise=0.1), "task.frac_noise"),
    (dict(seq_len="long"), "task.seq_len"),
    (dict(seq_len=15), "task.seq_len"),
], ids=lambda x: str(x))
def test_bad_task_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        task(**overrides)
    assert "\n" not in str(err.value)


def test_a_causal_lm_may_not_read_the_answer():
    with pytest.raises(ConfigError, match="task.readout=lm: 100% of scored targets"):
        TaskConfig.from_dict(dict(name="compression", vocab_size=8, seq_len=8, readout="lm"))
    assert TaskConfig.from_dict(dict(name="compression", vocab_size=8, seq_len=8, readout="last_position"))


def test_the_last_position_readout_is_only_for_reconstruction():
    with pytest.raises(ConfigError, match="task.readout=last_position"):
        task(readout="last_position")
    for name in TASKS:
        examples = TASKS[name](32, np.random.default_rng(0))
        check_readout("last_position" if name == "compression" else "lm", examples)


def test_splits_come_from_separate_seed_streams():
    a, b = TaskData(task(), seed=0, batch_size=8), TaskData(task(), seed=0, batch_size=8)
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(a, split).inputs, getattr(b, split).inputs)
    assert not np.array_equal(a.val.inputs, a.test.inputs[: len(a.val.inputs)])
    assert not np.array_equal(a.train.inputs[:16], a.test.inputs)
    other = TaskData(task(), seed=1, batch_size=8)
    assert not np.array_equal(a.test.inputs, other.test.inputs)
    # The training set does not depend on the validation or test sizes.
    bigger = TaskData(task(num_val=32, num_test=48), seed=0, batch_size=8)
    assert np.array_equal(a.train.inputs, bigger.train.inputs)


def test_a_fixed_training_set_is_seen_once_per_epoch():
    d = TaskData(task(num_train=40), seed=0, batch_size=8)
    rows = np.concatenate([d.train_batch()[0] for _ in range(5)])
    epoch = {r.tobytes() for r in rows}
    assert len(rows) == 40 and epoch == {r.tobytes() for r in d.train.inputs}


def test_loss_targets_follow_loss_on():
    inputs, targets = TaskData(task(loss_on="all"), seed=0, batch_size=8).train_batch()
    assert (targets != -100).all()
    inputs, targets = TaskData(task(loss_on="scored"), seed=0, batch_size=8).train_batch()
    assert (targets != -100).sum() < targets.size


def test_fresh_examples_differ_every_step():
    d = TaskData(task(num_train=0), seed=0, batch_size=8)
    assert d.train is None and not np.array_equal(d.train_batch()[0], d.train_batch()[0])


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
    cfg = TaskConfig.from_dict(dict(name="memorization", vocab_size=7, seq_len=4, num_train=6, num_val=8,
                                    num_test=20))
    d = TaskData(cfg, seed=0, batch_size=4)
    assert 0 < d.leaked == brute_force_leaks(d.train.inputs, d.test.inputs) < 20


def test_fresh_batches_are_checked_for_leaks():
    cfg = TaskConfig.from_dict(dict(name="memorization", vocab_size=7, seq_len=4, num_train=0, num_test=20))
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
    monkeypatch.setattr(TaskConfig, "generate", lambda *a: pytest.fail("generated instead of read"))
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
