"""The finite state of linear-readout mixers: the state forms continue from an initial state and return
the final one, a split pass equals one pass in every order of forms, and state_size counts the real state."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import PRESETS, assert_close, compose, state_forms
from test_forms import perturb, random_knobs

from cdyn_bench.choices import STABILISED
from cdyn_bench.mixer import FORMS, CoeffMixer, reference
from cdyn_bench.mixer.components import Evolution, State
from cdyn_bench.model import LanguageModel

LINEAR = [p for p in PRESETS if compose(f"model={p}").model.mixer.phi == "identity"]
T = 37
SPLITS = [1, 16, 30]
ORDERS = [("chunked", "recurrent"), ("recurrent", "chunked"), ("chunked", "chunked"), ("recurrent", "recurrent"),
          ("scan", "chunked"), ("recurrent", "scan"), ("scan", "scan")]


def part(x: torch.Tensor | None, steps: slice) -> torch.Tensor | None:
    return None if x is None else x[:, steps]


def evolution_part(evolution: Evolution, steps: slice) -> Evolution:
    return Evolution(**{f.name: part(getattr(evolution, f.name), steps) for f in dataclasses.fields(evolution)})


def components(cfg, d_model: int = 16, rotary: bool = False):
    """q, b, v, A_t, learned eta of a perturbed float64 mixer on a random input of T steps."""
    torch.manual_seed(0)
    mixer = CoeffMixer(d_model, cfg, rotary)
    perturb(mixer)
    mixer = mixer.double()
    u = torch.randn(2, T, d_model, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        return mixer, mixer.components(u)


def run(form: str, cfg, q, b, v, evolution, eta_learned, steps: slice, initial: State | None = None):
    options = {"chunk_size": cfg.chunk_size} if form == "chunked" else {}
    return FORMS[form](part(q, steps), part(b, steps), part(v, steps), evolution_part(evolution, steps), cfg.phi,
                       cfg.eta, part(eta_learned, steps), initial=initial, return_state=True, **options)


def check_continuation(cfg, d_model: int = 16, rotary: bool = False) -> None:
    """For every split point and order of forms: prefix then suffix from the prefix's final state equals the
    definition over the whole sequence (float64), and the final states of both ways agree."""
    _, (q, b, v, evolution, eta) = components(cfg, d_model, rotary)
    y_ref = reference(q, b, v, evolution, cfg.phi, cfg.eta, eta)
    _, whole = run("recurrent", cfg, q, b, v, evolution, eta, slice(0, T))
    for split in SPLITS:
        for first, second in [order for order in ORDERS if set(order) <= set(state_forms(cfg))]:
            y1, state = run(first, cfg, q, b, v, evolution, eta, slice(0, split))
            y2, final = run(second, cfg, q, b, v, evolution, eta, slice(split, T), state)
            assert_close(f"{first} then {second} at {split}", y_ref, torch.cat([y1, y2], 1), 1e-10)
            assert_close(f"final state, {first} then {second} at {split}",
                         torch.exp(whole.m)[..., None, None] * whole.S, torch.exp(final.m)[..., None, None] * final.S,
                         1e-10)


@pytest.mark.parametrize("preset", LINEAR)
def test_a_split_pass_equals_one_pass_for_every_linear_preset(preset):
    model = compose(f"model={preset}", "model.d_model=16", "model.mixer.n_heads=2", "model.mixer.chunk_size=8").model
    check_continuation(model.mixer, 16, rotary=model.pos_emb == "rotary")


@pytest.mark.parametrize("seed", range(0, 50, 5))
def test_a_split_pass_equals_one_pass_for_random_knobs(seed):
    check_continuation(random_knobs(seed, 8), 8)


@pytest.mark.parametrize("preset", LINEAR)
def test_state_size_counts_the_real_state(preset):
    model = compose(f"model={preset}", "model.d_model=16", "model.mixer.n_heads=2").model
    mixer, (q, b, v, evolution, eta) = components(model.mixer, 16, rotary=model.pos_emb == "rotary")
    _, state = run("recurrent", model.mixer, q, b, v, evolution, eta, slice(0, T))
    real = state.S[0].numel() + (state.m[0].numel() if model.mixer.eta in STABILISED else 0)
    conv = (model.mixer.conv_size - 1) * mixer.proj.out_features if model.mixer.conv_size else 0
    assert mixer.state_size(T) == real + conv == mixer.state_size(10 * T)


@pytest.mark.parametrize("preset", PRESETS)
def test_prefill_then_generation_equals_one_pass(preset):
    """The model's own streaming step: a prompt, then one token at a time from the caches, gives the
    logits of one forward pass over the whole sequence (float64), for every preset."""
    model = LanguageModel(compose(f"model={preset}", "model.d_model=16", "model.mixer.n_heads=2",
                                  "model.mixer.chunk_size=4").model, vocab_size=11)
    perturb(model)
    model = model.double().eval()
    tokens = torch.randint(0, 11, (2, 13), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(tokens)
        logits, caches = model.step(tokens[:, :6])
        steps = [logits]
        for t in range(6, 13):
            logits, caches = model.step(tokens[:, t:t + 1], caches)
            steps.append(logits)
    assert_close(f"{preset} streamed", whole, torch.cat(steps, 1), 1e-10)
    assert all(c.position == 13 for c in caches)


@pytest.mark.parametrize("preset", PRESETS)
def test_the_state_is_finite_exactly_when_the_readout_is_linear(preset):
    """A linear readout's cache holds state_size floats at any length; a nonlinear one's grows with L."""
    cfg = compose(f"model={preset}", "model.d_model=16", "model.mixer.n_heads=2").model
    mixer = LanguageModel(cfg, vocab_size=11).blocks[0].mixer
    sizes = []
    for L in (5, 20):
        u = torch.randn(1, L, 16, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            sizes.append(mixer.step(u)[1].floats())
    if mixer.finite_state:
        assert sizes == [mixer.state_size(5), mixer.state_size(20)] and sizes[0] == sizes[1]
    else:
        assert sizes[1] > sizes[0] and sizes == [mixer.state_size(5), mixer.state_size(20)]


@pytest.mark.parametrize("knobs", [
    ("phi=exp", "eta=sum", "A=scalar_gate"), ("phi=softplus", "eta=learned", "A=fixed", "gamma=1.05"),
    ("phi=exp", "eta=one", "A=fixed", "gamma=0.9"), ("phi=relu", "eta=abs_sum", "A=learned_scalar"),
    ("phi=identity", "eta=abs_sum", "A=scalar_gate", "conv_size=4"),
    ("phi=exp", "eta=mlstm", "A=scalar_gate", "gate=mlstm", "b=input_gate_key"),
    ("phi=exp", "eta=sum", "share_qk=true"),
], ids="-".join)
def test_a_kv_cache_with_scalar_decays_streams_exactly(knobs):
    cfg = compose("model.d_model=16", "model.mixer.n_heads=2", *(f"model.mixer.{k}" for k in knobs)).model
    check_streaming(cfg, length=9, prefix=4, name=" ".join(knobs))


def check_streaming(cfg, length: int = 13, prefix: int = 6, scale: float = 0.3, name: str = "streamed") -> None:
    """A prompt of `prefix` tokens, then one token at a time from the caches, gives one forward pass's logits
    (float64, 1e-10), and the caches hold state_size floats."""
    model = LanguageModel(cfg, vocab_size=11)
    perturb(model, scale)
    model = model.double().eval()
    tokens = torch.randint(0, 11, (2, length), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, caches = model.step(tokens[:, :prefix])
        steps = [logits]
        for t in range(prefix, length):
            logits, caches = model.step(tokens[:, t:t + 1], caches)
            steps.append(logits)
        assert_close(name, model(tokens), torch.cat(steps, 1), 1e-10)
    assert caches[0].floats() == model.blocks[0].mixer.state_size(length)


def test_streaming_a_nonlinear_readout_with_diagonal_a_is_refused():
    cfg = compose("model.d_model=16", "model.mixer.phi=exp", "model.mixer.eta=sum", "model.mixer.A=diag_gate").model
    with pytest.raises(ValueError, match="diagonal or Householder A"):
        LanguageModel(cfg, vocab_size=11).step(torch.zeros(1, 3, dtype=torch.long))


def test_a_width_one_convolution_keeps_no_inputs_and_learned_positions_end_at_max_len():
    cfg = compose("model=gated", "model.d_model=16", "model.mixer.n_heads=2", "model.mixer.conv_size=1").model
    mixer = LanguageModel(cfg, vocab_size=11).blocks[0].mixer
    with torch.no_grad():
        cache = mixer.step(torch.randn(1, 20, 16))[1]
    assert cache.conv.shape[1] == 0 and cache.floats() == mixer.state_size(20)
    model = LanguageModel(compose("model=gated", "model.pos_emb=learned", "model.max_len=8", "task.seq_len=8",
                                  "task.num_kv_pairs=2").model, vocab_size=11)
    with pytest.raises(ValueError, match="model.max_len=8"):
        model.step(torch.zeros(1, 9, dtype=torch.long))
