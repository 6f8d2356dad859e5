"""The text task: its corpus (checksum, licence, no download), disjoint contiguous splits, windows that are the
corpus's own tokens, the bits-per-character metric, and the same determinism, resume and bad-input behaviour as
every task."""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdyn_bench.tasks import corpus as text_task
from cdyn_bench.tasks.corpus import CORPORA, SPLITS, block, encoded, text, window_starts
from helpers import BIN, cli_env, compose
from test_bad_inputs import BAD_VALUES, check_usage_error
from test_checkpoint import killed_after_checkpoint, numbers

SMALL = ("task=text", "task.seq_len=16", "model.d_model=16", "model.n_layers=1", "task.num_val=16",
         "task.num_test=16", "train.batch_size=8", "train.max_steps=20", "train.eval_every=10",
         "train.warmup_steps=2", "train.num_threads=1", "progress=false", "wandb=disabled")


def test_the_corpus_ships_with_its_licence_and_checksum():
    for name, corpus in CORPORA.items():
        packed = text_task.CORPUS_DIR / corpus.file
        assert hashlib.sha256(lzma.decompress(packed.read_bytes())).hexdigest() == corpus.sha256
        assert (text_task.CORPUS_DIR / corpus.licence.split(", ")[-1].split("/")[-1]).is_file()
    ids, size = encoded("python_stdlib", "bytes")
    assert (len(ids), size) == (4_698_388, 256)


def test_the_blocks_tile_the_corpus_in_order():
    n = len(encoded("python_stdlib", "bytes")[0])
    bounds = [block(n, split) for split in ("train", "val", "test")]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(num_tokens=st.integers(100, 10**7), seq_len=st.integers(1, 4), num=st.integers(1, 300),
       split=st.sampled_from(list(SPLITS)), seed=st.integers(0, 2**32))
def test_no_window_crosses_its_split(num_tokens, seq_len, num, split, seed):
    lo, hi = block(num_tokens, split)
    starts = window_starts(num_tokens, split, num, seq_len, np.random.default_rng(seed))
    assert starts.shape == (num,)
    assert starts.min() >= lo and starts.max() + seq_len + 1 <= hi  # every token of the window, target included


@pytest.mark.parametrize("vocab", ["bytes", "chars"])
def test_windows_are_the_corpus_and_targets_the_next_token(vocab):
    ids, size = encoded("python_stdlib", vocab)
    for split in SPLITS:
        ex = text(50, np.random.default_rng(3), seq_len=32, vocab=vocab, split=split)
        starts = window_starts(len(ids), split, 50, 32, np.random.default_rng(3))
        for row, start in enumerate(starts):
            assert np.array_equal(ex.inputs[row], ids[start:start + 32])
            assert np.array_equal(ex.targets[row], ids[start + 1:start + 33])
        assert ex.inputs.max() < size and (ex.targets == ex.train_targets).all()


def test_validation_and_test_windows_are_fixed_and_training_windows_follow_the_seed():
    a, b = (text(64, np.random.default_rng(s), seq_len=16, split="test") for s in (0, 1))
    assert np.array_equal(a.inputs, b.inputs)
    a, b = (text(64, np.random.default_rng(s), seq_len=16) for s in (0, 1))
    assert not np.array_equal(a.inputs, b.inputs)
    assert np.array_equal(a.inputs, text(64, np.random.default_rng(0), seq_len=16).inputs)


def test_the_char_vocabulary_is_the_corpus_alphabet():
    ids, size = encoded("python_stdlib", "chars")
    alphabet = sorted(set(text_task.load_text("python_stdlib").decode("utf-8")))
    assert size == len(alphabet) and len(ids) == len(text_task.load_text("python_stdlib").decode("utf-8"))
    assert alphabet[ids[100]] == text_task.load_text("python_stdlib").decode("utf-8")[100]


def test_a_damaged_corpus_is_refused_naming_the_file(tmp_path, monkeypatch):
    packed = text_task.CORPUS_DIR / CORPORA["python_stdlib"].file
    damaged = lzma.decompress(packed.read_bytes()).replace(b"def ", b"fed ", 1)
    (tmp_path / packed.name).write_bytes(lzma.compress(damaged))
    monkeypatch.setattr(text_task, "CORPUS_DIR", tmp_path)
    text_task.load_text.cache_clear()
    text_task.encoded.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"corpus='python_stdlib': .*python_stdlib.txt.xz is damaged") as err:
            text(4, np.random.default_rng(0))
        assert "\n" not in str(err.value)
        (tmp_path / packed.name).write_bytes(b"not xz")
        text_task.load_text.cache_clear()
        with pytest.raises(ValueError, match="cannot read"):
            text(4, np.random.default_rng(0))
    finally:
        text_task.load_text.cache_clear()
        text_task.encoded.cache_clear()
        text_task.alphabet.cache_clear()


def test_a_run_records_bits_per_char_and_repeats_bit_for_bit(tmp_path):
    from cdyn_bench.run import run

    first = run(compose(*SMALL), tmp_path / "a" / "runs")
    m = first.metrics
    assert m["test_bits_per_char"] == pytest.approx(m["test_loss"] / math.log(2), rel=1e-12)
    assert m["val_bits_per_char"] == pytest.approx(first.history[-1]["val_loss"] / math.log(2), rel=1e-12)
    assert 0 < m["test_bits_per_char"] < 8
    assert numbers(run(compose(*SMALL), tmp_path / "b" / "runs")) == numbers(first)


def test_an_interrupted_text_run_resumes_to_the_uninterrupted_record(tmp_path, monkeypatch):
    from cdyn_bench.run import run

    overrides = (*SMALL, "train.checkpoint_every=10", "train.target_accuracy=2")
    whole = run(compose(*overrides), tmp_path / "a" / "runs")
    killed_after_checkpoint(monkeypatch, 10)
    with pytest.raises(KeyboardInterrupt):
        run(compose(*overrides), tmp_path / "b" / "runs")
    monkeypatch.undo()
    assert numbers(run(compose(*overrides), tmp_path / "b" / "runs")) == numbers(whole)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(key=st.sampled_from(["task.corpus", "task.vocab", "task.seq_len"]), value=BAD_VALUES)
def test_a_bad_text_value_is_a_config_or_one_line_naming_the_key(key, value):
    check_usage_error(["task=text", f"{key}={value}"], key)


def test_the_cli_trains_on_text_offline_and_names_a_bad_corpus(tmp_path):
    env = cli_env(tmp_path)
    done = subprocess.run([str(BIN / "cdyn-run"), *SMALL, f"out_dir={tmp_path}"], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads(next(tmp_path.rglob("result.json")).read_text())
    assert record["config"]["task"]["corpus"] == "python_stdlib" and "test_bits_per_char" in record["metrics"]
    bad = subprocess.run([str(BIN / "cdyn-run"), *SMALL, "task.corpus=wiki", f"out_dir={tmp_path}"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "task.corpus='wiki': must be one of python_stdlib" in bad.stderr


def test_generation_streams_what_the_full_forward_predicts_and_repeats_with_its_seed(tmp_path):
    import torch

    from cdyn_bench.generate import generate, load, sample
    from cdyn_bench.run import run

    done = run(compose(*SMALL, "model=gla", "train.save_weights=true"), tmp_path / "runs")
    folder = tmp_path / done.run_dir
    model, task = load(folder)
    prompt = list(b"def f(x):\n")
    greedy = sample(model, prompt, 12, 0.0, torch.Generator().manual_seed(0))
    tokens = list(prompt)
    with torch.no_grad():
        for _ in range(12):  # the naive loop: the whole sequence through forward() at every step
            tokens.append(int(model(torch.tensor([tokens]))[0, -1].argmax()))
    assert greedy == tokens[len(prompt):]
    a, b = (generate(folder, "class ", 40, 0.8, seed) for seed in (0, 0))
    assert a == b and a.startswith("class ") and generate(folder, "class ", 40, 0.8, 1) != a


def test_generate_refuses_a_run_without_weights_or_of_another_task(tmp_path):
    from helpers import TINY

    from cdyn_bench.run import run

    env = cli_env(tmp_path)
    plain = run(compose(*SMALL), tmp_path / "a" / "runs")
    mqar = run(compose(*TINY, "train.save_weights=true"), tmp_path / "b" / "runs")
    for folder, says in ((tmp_path / "a" / plain.run_dir, "no trained weights"),
                         (tmp_path / "b" / mqar.run_dir, "only text runs"), (tmp_path / "nowhere", "no such record")):
        done = subprocess.run([str(BIN / "cdyn-generate"), str(folder)], env=env, capture_output=True, text=True)
        assert done.returncode != 0 and says in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
