"""The forms agree: quadratic, recurrent, chunked and scan against the float64 definition (`reference`), in
float64 to 1e-10 (the formula) and in float32 within its rounding, in outputs and in the gradients of the
input and of every parameter, for every preset and for random valid knob combinations."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
import torch
import torch.nn.functional as F
from helpers import PRESETS, assert_close, compose, run_fwd_bwd, state_forms

from cdyn_bench.choices import FEATURE_MAPS, GATES, INPUTS, OUT_NORMS, STATE_NORMALISERS
from cdyn_bench.mixer import FORMS, CoeffMixer, MixerConfig, reference
from cdyn_bench.mixer.components import Evolution
from cdyn_bench.mixer.evolutions import EVOLUTIONS

# The 50 random knob combinations were drawn over these kinds of A (and their float32 rounding checked); every
# kind registered since gets combinations of its own (`EXTRA`), so adding a kind leaves the old draws as they were.
DRAWN = ("identity", "fixed", "learned_scalar", "scalar_gate", "diag_gate", "householder", "gated_householder")
KINDS = [*DRAWN, *(kind for kind in EVOLUTIONS if kind not in DRAWN)]
EXTRA = [(seed, kind) for kind in KINDS[len(DRAWN):] for seed in range(5)]

LENGTHS = [1, 7, 64, 200]
STATE_FORMS = ["quadratic", "recurrent", "chunked", "scan"]
# float32 forms against the float64 reference: outputs and input gradients.
RATIO = 1e-4
# Parameter gradients are sums over all B*T positions of terms carrying exp(log decay) factors: in fp32
# they reach 1.6e-4 relative error even for the quadratic formula itself on one CPU, 2.9e-4 on another
# (random knobs seed 1 at T = 200, every form, the quadratic 2.4e-4), so they get a wider margin; the
# float64 check below is what holds each form to the formula.
PARAM_RATIO = 5e-4
# Every form in float64 against the float64 reference: the same numbers up to summation order.
EXACT = 1e-10


def perturb(mixer, scale=0.3):
    """Move every parameter off its initialisation (weights by scale/sqrt(fan-in)) so that all gates matter."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in mixer.parameters():
            fan_in = p.shape[-1] if p.dim() > 1 else 1
            p.add_(scale / fan_in**0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def check_forms(cfg, d_model, T, forms, rotary=False):
    torch.manual_seed(0)
    ref = CoeffMixer(d_model, dataclasses.replace(cfg, form="quadratic"), rotary)
    ref.run_form = reference
    perturb(ref)
    ref = ref.double()
    u = torch.randn(2, T, d_model, generator=torch.Generator().manual_seed(3)).double()
    y_ref, grads_ref = run_fwd_bwd(ref, {"input": u}, ref)
    for form in forms:
        for dtype in (torch.float64, torch.float32):
            mixer = CoeffMixer(d_model, dataclasses.replace(cfg, form=form), rotary).to(dtype)
            mixer.load_state_dict(ref.state_dict())
            y, grads = run_fwd_bwd(mixer, {"input": u.to(dtype)}, mixer)
            assert_close(f"{form} {dtype} output", y_ref, y, EXACT if dtype == torch.float64 else RATIO)
            assert grads.keys() == grads_ref.keys()
            for name, grad in grads_ref.items():
                ratio = EXACT if dtype == torch.float64 else RATIO if name == "input" else PARAM_RATIO
                assert_close(f"{form} {dtype} d/d{name}", grad, grads[name], ratio)


@pytest.mark.parametrize("T", LENGTHS, ids=lambda T: f"L{T}")
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_forms_agree(preset, T):
    model = compose(f"model={preset}", "model.d_model=32", "model.mixer.n_heads=2").model
    forms = state_forms(model.mixer) if model.mixer.phi == "identity" else ["quadratic"]
    check_forms(model.mixer, 32, T, forms, rotary=model.pos_emb == "rotary")


def random_knobs(seed: int, d_model: int, kind: str | None = None) -> MixerConfig:
    """A random knob combination that every form can compute (phi = identity), drawn so that each
    evolution, input and normaliser appears; dependent knobs are drawn from what their parents allow.
    kind: this A instead of the drawn one (the other knobs drawn as for the seed, then made to fit it)."""
    rng = random.Random(seed)
    A, b, eta, gate = rng.choice(DRAWN), rng.choice(INPUTS), rng.choice(STATE_NORMALISERS), rng.choice(GATES)
    psi = rng.choice(FEATURE_MAPS)
    if b == "delta_B":
        A, gate = rng.choice([a for a in DRAWN if EVOLUTIONS[a].input_dependent]), "mamba"
    if eta == "sum":
        # A causal sum of mixed-sign coefficients can pass through zero: keep the coefficients positive.
        A, b, psi = rng.choice([a for a in DRAWN if not EVOLUTIONS[a].householder]), "feature", rng.choice(["elu1", "exp", "softmax"])
    if kind is not None:
        A = kind
        b = "key" if b == "delta_B" and not EVOLUTIONS[A].input_dependent else b
        # A Householder or rotation factor can flip a score's sign: a signed causal sum may cross zero.
        eta = "mlstm" if eta == "sum" and (EVOLUTIONS[A].householder or EVOLUTIONS[A].rotates) else eta
    value_dim = rng.choice([1, 3])
    cfg = MixerConfig(
        n_heads=2, head_dim=rng.choice([2, 4] if EVOLUTIONS[A].rotates else [2, 3, 4]), value_dim=value_dim, share_qk=rng.random() < 0.3,
        A=A, gamma=rng.uniform(0.8, 1.1), gamma_heads=rng.choice(["same", "retnet"]) if A == "fixed" else "same",
        gate=gate, gate_temperature=rng.choice([1.0, 4.0]), gate_rank=rng.choice([0, 2]),
        rate_init=rng.choice(["uniform", "s4d_real"]) if (A, gate) == ("diag_gate", "mamba") else "uniform",
        b=b, scale_b=rng.random() < 0.5, psi=psi, normalize_k=rng.random() < 0.5,
        eta=eta, eta_f=rng.choice(["exp", "softplus", "sigmoid"]), conv_size=rng.choice([0, 2]),
        out_gate=rng.random() < 0.5, out_norm=rng.choice(OUT_NORMS if value_dim > 1 else ["none", "rms_width"]),
        form="chunked", chunk_size=rng.choice([1, 3, 8, 16]), normalize_q=rng.random() < 0.5,
        norm_before_gate=rng.random() < 0.5,
    )
    cfg.check(d_model)
    return cfg


def knob_id(case: tuple[int, str | None]) -> str:
    cfg = random_knobs(*case[:1], 8, case[1])
    return f"{case[0]}-{cfg.A}-{cfg.b}-eta_{cfg.eta}-C{cfg.chunk_size}"


@pytest.mark.parametrize("case", [(seed, None) for seed in range(50)] + EXTRA, ids=knob_id)
def test_random_knobs_forms_agree(case):
    seed, kind = case
    cfg = random_knobs(seed, 8, kind)
    # A rotating A at T = 1: one token's query and impulse turn by the same angle, so the angles' gradient is 0 in
    # exact arithmetic and rounding noise in each precision (tests/test_state_tracking.py checks the rotation).
    for T in [T for T in LENGTHS if T > 1 or not EVOLUTIONS[cfg.A].rotates]:
        check_forms(cfg, 8, T, state_forms(cfg))


def test_random_knobs_cover_every_evolution_and_input():
    combos = [random_knobs(seed, 8) for seed in range(50)]
    assert {c.A for c in combos} | {kind for _, kind in EXTRA} == set(KINDS) == set(EVOLUTIONS)
    assert {c.b for c in combos} == set(INPUTS)
    assert {c.eta for c in combos} == set(STATE_NORMALISERS)
    assert {c.out_norm for c in combos} == set(OUT_NORMS) and {c.normalize_q for c in combos} == {False, True}
    assert {c.gate for c in combos if EVOLUTIONS[c.A].gated} == set(GATES) and {c.psi for c in combos} == set(FEATURE_MAPS)
    assert {c.norm_before_gate for c in combos if c.out_gate and c.out_norm != "none"} == {False, True}


@pytest.mark.parametrize("form", STATE_FORMS)
def test_normalised_forms_survive_growth(form):
    """A = 1.05 I over 2000 steps (1.05^2000 > fp32 max) and an input gate exp(80) stay finite and exact."""
    q, k, v = (torch.randn(1, 2000, 2, d, generator=torch.Generator().manual_seed(s)) for s, d in ((0, 4), (1, 4), (2, 3)))
    grow = Evolution(torch.full((1, 2000, 2), math.log(1.05)))
    gate = Evolution(F.logsigmoid(torch.randn(1, 2000, 2)), log_i=80 + 5 * torch.randn(1, 2000, 2))
    q, k = F.elu(q) + 1, F.elu(k) + 1
    for evolution, eta in ((grow, "sum"), (gate, "mlstm")):
        ref = reference(q.double(), k.double(), v.double(), Evolution(**{f: None if x is None else x.double()
                        for f, x in vars(evolution).items()}), "identity", eta)
        y = FORMS[form](q, k, v, evolution, "identity", eta)
        assert torch.isfinite(y).all()
        assert_close(f"{form} eta={eta}", ref, y, RATIO)


@pytest.mark.parametrize("preset", PRESETS)
def test_outputs_do_not_see_the_future(preset):
    """Across chunk boundaries too: 20 steps in chunks of 8, the change from step 12 on."""
    model = compose(f"model={preset}", "model.d_model=32", "model.mixer.n_heads=2",
                    "model.mixer.chunk_size=8").model
    forms = state_forms(model.mixer) if model.mixer.phi == "identity" else ["quadratic"]
    g = torch.Generator().manual_seed(6)
    u = torch.randn(2, 20, 32, generator=g)
    later = u.clone()
    later[:, 12:] += torch.randn(2, 8, 32, generator=g)
    for form in forms:
        torch.manual_seed(0)
        mixer = CoeffMixer(32, dataclasses.replace(model.mixer, form=form), model.pos_emb == "rotary")
        y, y_later = mixer(u), mixer(later)
        assert torch.equal(y[:, :12], y_later[:, :12]), form
        assert not torch.allclose(y[:, 12:], y_later[:, 12:]), form


@pytest.mark.parametrize("T", [1, 7, 64], ids=lambda T: f"L{T}")
@pytest.mark.parametrize("A", ["identity", "fixed", "scalar_gate", "diag_gate", "householder"])
@pytest.mark.parametrize("phi, eta", [("exp", "sum"), ("identity", "one"), ("relu", "sum"), ("softplus", "abs_sum"),
                                      ("exp", "one"), ("sigmoid", "learned")])
def test_quadratic_form_equals_the_definition(phi, eta, A, T):
    """The quadratic form's fused paths (softmax attention, unnormalised linear readout) and its general path
    against `reference` in float64, with an input gate where A is scalar and eta = 1 (a normaliser would
    make its gradient vanish at L = 1, which fp32 cannot match relatively)."""
    b = "input_gate_key" if A in ("fixed", "scalar_gate") and eta == "one" else "key"
    cfg = MixerConfig(n_heads=2, A=A, gamma=0.95, b=b, phi=phi, eta=eta, form="quadratic")
    check_forms(cfg, 8, T, ["quadratic"])
