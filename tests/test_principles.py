"""The principle card on known cases: each prediction against what the framework implies and what runs show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PRESETS, compose

from cdyn_bench.model import LanguageModel
from cdyn_bench.principles import card, card_record

CDYN_EXPLAIN = str(Path(sys.executable).parent / "cdyn-explain")


def predicted(*overrides: str) -> dict:
    return card_record(compose(*overrides))


@pytest.mark.parametrize("preset", PRESETS)
def test_memory_is_a_finite_state_exactly_for_linear_readouts_and_its_size_is_the_models(preset):
    cfg = compose(f"model={preset}")
    (memory,) = [p for p in card(cfg) if p.name == "memory"]
    mixer = LanguageModel(cfg.model, 256).blocks[0].mixer
    assert (memory.value == "finite_state") == mixer.finite_state
    assert f"{mixer.state_size(64):,}" in memory.reason  # MQAR's T = 64: what the streaming cache holds


def test_known_cases():
    softmax = predicted("model=softmax")
    assert softmax["memory"] == "kv_cache" and softmax["order"] == "encoded" and softmax["zero_set"] == "none"
    assert predicted("model=softmax", "model.pos_emb=none", "model.n_layers=1")["order"] == "invariant"
    assert predicted("model=softmax", "model.pos_emb=none")["order"] == "not_built_in"
    gated = predicted("model=gated")
    assert gated["memory"] == "finite_state" and gated["order"] == "encoded" and gated["growth"] == "bounded"
    assert gated["zero_set"] == "hyperplane" and gated["normaliser_sign"] == "none"
    unstable = ("model=softmax", "model.mixer.A=fixed", "model.mixer.gamma=1.05", "task=noisy_icr", "task.seq_len=128")
    assert predicted(*unstable, "model.mixer.eta=one")["growth"] == "overflow"
    (growth,) = [p for p in card(compose(*unstable, "model.mixer.eta=one")) if p.name == "growth"]
    # seq_len 128 is T = 127 model inputs (MAD's shift), so the longest distance i - j is 126.
    assert "1.05^126 = 468" in growth.reason
    linear_no_pe = card(compose("model=linear", "model.pos_emb=none"))
    assert any("permutation-invariant" in p.reason for p in linear_no_pe if p.name == "order")
    assert predicted(*unstable, "model.mixer.eta=sum")["growth"] == "normalised"
    assert predicted(*unstable, "model.mixer.eta=one", "model.mixer.phi=identity")["growth"] == "unbounded"
    assert predicted("model=softmax", "model.mixer.A=fixed", "model.mixer.gamma=0.9")["growth"] == "bounded"
    assert predicted("model=softmax", "model.mixer.phi=relu")["zero_set"] == "half_space"
    assert predicted("model=gated", "model.mixer.scale_b=false")["score_variance"] == "O(n)"
    assert predicted("model=gated")["score_variance"] == "O(1)"
    assert predicted("model=gated", "model.mixer.eta=sum")["normaliser_sign"] == "can_cross_zero"
    assert predicted("model=linear")["normaliser_sign"] == "positive"  # elu+1 features: scores >= 0
    assert predicted("model=mlstm")["normaliser_sign"] == "positive" and predicted("model=mlstm")["growth"] == "normalised"


def test_the_unstable_cell_measured_here_agrees_with_its_card(tmp_path):
    """A = 2 I with eta = 1 and phi = exp overflows at the first step (the card: overflow)."""
    from cdyn_bench.run import run
    from helpers import TINY

    overrides = (*TINY, "model.mixer.A=fixed", "model.mixer.gamma=2.0", "model.mixer.eta=one", "model.mixer.phi=exp",
                 "task.seq_len=256", "task.num_kv_pairs=8")
    assert predicted(*overrides)["growth"] == "overflow"
    assert run(compose(*overrides), tmp_path).status == "diverged"


def test_cdyn_explain_prints_the_card_and_refuses_bad_input_in_one_line():
    out = subprocess.run([CDYN_EXPLAIN, "model=softmax", "model.pos_emb=none", "model.n_layers=1"],
                         capture_output=True, text=True, check=True).stdout
    assert "kv_cache" in out and "invariant" in out and len(out.splitlines()) == 8
    bad = subprocess.run([CDYN_EXPLAIN, "model.mixer.phi=tanh"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "model.mixer.phi" in bad.stderr


def test_every_record_carries_its_card(tmp_path):
    from cdyn_bench.record import read_result
    from cdyn_bench.run import run
    from helpers import TINY

    result = run(compose(*TINY), tmp_path)
    assert read_result(result.path).principles == predicted(*TINY) and result.principles["memory"] == "finite_state"


def test_report_principles_counts_where_predictions_held(tmp_path):
    from cdyn_bench.views import principles_table
    from cdyn_bench.run import run
    from helpers import TINY

    overflow = (*TINY, "model.mixer.A=fixed", "model.mixer.gamma=2.0", "model.mixer.eta=one", "model.mixer.phi=exp",
                "task.seq_len=256", "task.num_kv_pairs=8")
    for overrides in (overflow, TINY, (*TINY, "model.mixer.A=identity", "model.mixer.conv_size=0", "model.n_layers=1")):
        run(compose(*overrides), tmp_path / "cells")
    runs, counts = principles_table([tmp_path])
    by = counts.set_index(["prediction", "value"])
    assert by.loc[("growth", "overflow"), "held"] == 1 and by.loc[("growth", "bounded"), "runs"] == 2
    assert by.loc[("order", "invariant"), "runs"] == 1  # MQAR is order-dependent; 20 steps do not solve it
    assert set(runs["verdict"]) <= {"held", "failed"}
    out = subprocess.run([str(Path(sys.executable).parent / "cdyn-report"), str(tmp_path), "--principles", "--out",
                          str(tmp_path / "p")], capture_output=True, text=True, check=True)
    assert (tmp_path / "p" / "principles.md").exists() and "overflow" in out.stdout


def test_growth_is_overflow_only_where_float32_must_overflow():
    base = ("model=softmax", "model.mixer.A=fixed", "task.seq_len=256", "task.num_kv_pairs=8")
    assert predicted(*base, "model.mixer.gamma=1.001", "model.mixer.eta=one")["growth"] == "unbounded"  # 1.29x
    assert predicted(*base, "model.mixer.gamma=1.5", "model.mixer.eta=one", "model.mixer.phi=identity")["growth"] \
        == "overflow"  # 1.5^255 passes float32 for any phi
    assert predicted(*base, "model.mixer.gamma=1.05", "model.mixer.eta=learned")["growth"] == "overflow"
    assert predicted(*base, "model.mixer.gamma=1.05", "model.mixer.eta=learned", "task.seq_len=64")["growth"] \
        == "unbounded"  # 1.05^63 = 21.6: a unit score stays below exp's limit
    assert predicted("model=softmax", "model.mixer.A=fixed", "model.mixer.gamma=1.0", "model.pos_emb=none",
                     "model.n_layers=1")["order"] == "invariant"  # gamma = 1 is A = I
    assert predicted("model=linear", "model.mixer.normalize_q=true")["normaliser_sign"] == "positive"


def test_the_card_leaves_the_random_state_alone():
    import torch

    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    card(compose("model=gated"))
    assert torch.equal(torch.rand(3), expected)
