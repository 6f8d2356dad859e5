"""A new kind of A is one module and one registry line: a toy kind, a learned constant diagonal, is written
and registered here, inside the test, and goes through the same checks as the built-in kinds: every form
against the float64 definition, a split pass and token-by-token streaming, the eigenvalues, the spectrum,
the principle card, the memory estimate, the config checks and a training run through the runner."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY, compose, state_forms
from test_forms import LENGTHS, check_forms
from test_state import check_continuation, check_streaming
from torch import nn

from cdyn_bench.mixer.evolutions import EVOLUTIONS, EvolutionKind, register
from cdyn_bench.mixer.introspect import extremes, inspect_model
from cdyn_bench.model import LanguageModel
from cdyn_bench.principles import card
from cdyn_bench.run import run
from cdyn_bench.spectra import spectrum

NAME = "constant_diag"


class ConstantDiagonal(nn.Module):
    """log a = logsigmoid(c), one learned c per head and state channel, the same at every token."""

    def __init__(self, n_heads: int, n: int):
        super().__init__()
        self.logit = nn.Parameter(torch.linspace(1.0, 4.0, n_heads * n).view(n_heads, n))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return F.logsigmoid(self.logit).expand(*u.shape[:2], -1, -1)


class ConstantDiag(EvolutionKind):
    """The whole extension: a name, the structure's facts, the parameters and log a_t."""

    name = NAME
    summary = "A_t = Diag(a), one learned a per channel, the same at every token"
    factor = "diagonal"

    def build(self, cfg, d_model, n):
        return ConstantDiagonal(cfg.n_heads, n)

    def decay(self, gate, u, n_heads):
        return gate(u), None

    def radius_bound(self, cfg):
        return 1.0, "sigmoid(c) in (0, 1)"


@pytest.fixture(autouse=True, scope="module")
def toy_kind():
    kind = register(ConstantDiag())
    yield kind
    del EVOLUTIONS[NAME]


KNOBS = [
    ("b=key", "eta=one"),
    ("b=beta_key", "eta=learned", "conv_size=2"),
    ("b=feature", "psi=elu1", "eta=sum"),
    ("b=input_gate_key", "eta=mlstm", "out_norm=rms", "out_gate=true"),
]


def mixer_cfg(*knobs: str):
    return compose("model.d_model=8", "model.mixer.n_heads=2", "model.mixer.head_dim=3", "model.mixer.chunk_size=3",
                   f"model.mixer.A={NAME}", *(f"model.mixer.{k}" for k in knobs)).model.mixer


@pytest.mark.parametrize("knobs", KNOBS, ids="-".join)
def test_every_form_computes_the_new_kind(knobs):
    cfg = mixer_cfg(*knobs)
    assert state_forms(cfg) == ["quadratic", "recurrent", "chunked", "scan"]
    for T in LENGTHS:
        check_forms(cfg, 8, T, state_forms(cfg))


def test_a_nonlinear_readout_of_the_new_kind_matches_the_definition():
    check_forms(mixer_cfg("phi=exp", "eta=sum"), 8, 64, ["quadratic"])


@pytest.mark.parametrize("knobs", KNOBS, ids="-".join)
def test_the_new_kind_continues_from_its_state(knobs):
    check_continuation(mixer_cfg(*knobs), 8)


def test_the_new_kind_streams_token_by_token():
    check_streaming(compose("model.d_model=16", "model.mixer.n_heads=2", "model.mixer.chunk_size=4",
                            f"model.mixer.A={NAME}").model)


def test_the_eigenvalues_and_spectrum_of_the_new_kind():
    model = LanguageModel(compose("model.d_model=16", "model.mixer.n_heads=2", f"model.mixer.A={NAME}").model,
                          vocab_size=11)
    tokens = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(0))
    seen = inspect_model(model, tokens)[0]
    logit = model.blocks[0].mixer.evolution.gate.logit.detach().double()
    assert torch.allclose(seen["eigenvalues"], torch.sigmoid(logit).expand_as(seen["eigenvalues"]))
    rows = spectrum(model, tokens)
    assert rows and all(math.isfinite(v) for v in extremes(model, tokens).values())


def test_the_card_checks_and_memory_estimate_read_the_new_kind():
    cfg = compose(f"model.mixer.A={NAME}", "task.seq_len=64")
    growth = {p.name: p for p in card(cfg)}["growth"]
    assert growth.value == "bounded" and "sigmoid(c) in (0, 1)" in growth.reason
    assert {"gate", "gate_min", "gamma", "gamma_heads", "rate_init"} <= set(cfg.model.mixer.inactive())
    with pytest.raises(ValueError, match="needs A=diag_gate and gate=mamba"):
        compose(f"model.mixer.A={NAME}", "model.mixer.rate_init=s4d_real", "model.mixer.gate=mamba")
    with pytest.raises(ValueError, match=f"Did you mean {NAME}"):
        compose("model.mixer.A=constant_dig")


def test_the_new_kind_trains_through_the_runner(tmp_path):
    result = run(compose(*TINY, f"model.mixer.A={NAME}", f"out_dir={tmp_path}"), tmp_path)
    assert result.status == "completed" and result.steps == 20 and 0.0 <= result.metrics["test_accuracy"] <= 1.0
    assert result.principles["growth"] == "bounded"
