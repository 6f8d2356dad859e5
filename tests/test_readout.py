"""The model's read-outs: the causal LM head and MAD's last-position auto-encoder for compression."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import compose

from cdyn_bench.model import LanguageModel, sincos_positions
from cdyn_bench.registry import ConfigError

VOCAB, B, T = 12, 3, 10


@pytest.fixture(scope="module")
def cfg():
    return compose("model=softmax", "model.d_model=16", "model.n_layers=1").model


def model(cfg, readout: str) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(cfg, VOCAB, readout=readout).eval()


def tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (B, T), generator=torch.Generator().manual_seed(1))


def test_unknown_readout_is_a_config_error(cfg):
    with pytest.raises(ConfigError, match="task.readout"):
        LanguageModel(cfg, VOCAB, readout="mean")


@pytest.mark.parametrize("readout", ["lm", "last_position"])
def test_selected_logits_are_the_full_logits_at_those_positions(cfg, readout):
    m, x = model(cfg, readout), tokens()
    select = torch.rand(B, T, generator=torch.Generator().manual_seed(2)) < 0.5
    full = m(x)
    assert full.shape == (B, T, VOCAB)
    torch.testing.assert_close(m(x, select), full[select])


def test_last_position_decodes_from_the_last_hidden_state_only(cfg, monkeypatch):
    m, x = model(cfg, "last_position"), tokens()
    h = m.hidden(x)
    scrambled = h.clone()
    scrambled[:, :-1] = torch.randn_like(h[:, :-1])
    monkeypatch.setattr(m, "hidden", lambda tokens: scrambled)
    out = m(x)
    monkeypatch.setattr(m, "hidden", lambda tokens: h)
    torch.testing.assert_close(out, m(x))
    # Each position has its own embedding, so the positions decode differently.
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_lm_readout_is_causal_and_last_position_sees_everything(cfg):
    x = tokens()
    changed = x.clone()
    changed[:, 5] = (x[:, 5] + 1) % VOCAB
    lm = model(cfg, "lm")
    torch.testing.assert_close(lm(x)[:, :5], lm(changed)[:, :5])
    auto = model(cfg, "last_position")
    assert not torch.allclose(auto(x)[:, :5], auto(changed)[:, :5])


def test_sincos_positions_match_the_formula():
    pe = sincos_positions(7, 9)
    half = 4
    t, i = 5, 2
    freq = math.exp(-math.log(10000.0) * i / (half - 1))
    assert pe.shape == (7, 9) and pe[:, -1].abs().sum() == 0
    assert pe[t, i].item() == pytest.approx(math.sin(t * freq), abs=1e-6)
    assert pe[t, half + i].item() == pytest.approx(math.cos(t * freq), abs=1e-6)


def test_decoder_adds_parameters_only_for_last_position(cfg):
    lm, auto = model(cfg, "lm"), model(cfg, "last_position")
    count = lambda m: sum(p.numel() for p in m.parameters())
    d = cfg.d_model
    # two (norm, linear) pairs in the MLP plus the output norm: 3 layer norms and 2 d x d linears.
    assert count(auto) - count(lm) == 3 * 2 * d + 2 * (d * d + d)


@pytest.mark.parametrize("preset", ["gated", "softmax"])
def test_logits_at_selected_positions_equal_the_full_pass(preset):
    """The last block's MLP runs at the selected positions only; the logits there are unchanged."""
    cfg = compose(f"model={preset}", "model.d_model=16")
    torch.manual_seed(0)
    model = LanguageModel(cfg.model, 32).double()
    tokens = torch.randint(0, 32, (3, 12))
    select = torch.rand(3, 12, generator=torch.Generator().manual_seed(1)) < 0.3
    assert torch.allclose(model(tokens, select), model(tokens)[select], atol=1e-12)
