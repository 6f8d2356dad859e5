"""The mixer against independent references written from the published formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cdyn_bench.mixer import CoeffMixer, MixerConfig, coefficients, quadratic
from cdyn_bench.mixer.components import Evolution
from cdyn_bench.registry import ConfigError


def assert_close(name, ref, out, ratio=1e-5):
    """Relative RMS error of `out` against `ref` at most `ratio`."""
    err = (ref - out).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-12)
    assert err.item() <= ratio, f"{name}: relative RMS error {err.item():.2e} > {ratio:.0e}"


def qkv(B=2, T=13, H=2, n=8, dv=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, T, H, d, generator=g, dtype=dtype) for d in (n, n, dv)]


@pytest.mark.parametrize("T", [1, 7, 64])
def test_softmax_form_equals_sdpa(T):
    q, k, v = qkv(T=T)
    y = quadratic(q, k / math.sqrt(q.shape[-1]), v, Evolution(None), "exp", "sum")
    ref = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    assert_close("softmax vs sdpa", ref.transpose(1, 2), y)


def test_softmax_preset_layer_equals_sdpa():
    torch.manual_seed(0)
    mixer = CoeffMixer(32, MixerConfig(n_heads=2, A="identity", phi="exp", eta="sum", scale_b=True)).double()
    u = torch.randn(2, 11, 32, dtype=torch.float64)
    q, k, v = (x.view(2, 11, 2, 16) for x in mixer.proj(u).split(32, dim=-1))
    ref = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    assert_close("layer vs sdpa", mixer.out(ref.transpose(1, 2).flatten(2)), mixer(u))


def gated_loop(q, b, v, log_a, eta):
    """S_t = a_t S_{t-1} + b_t v_t^T; y_t = S_t^T q_t / eta_t, one step at a time, per head."""
    B, T, H, n = q.shape
    y = torch.zeros(B, T, H, v.shape[-1], dtype=q.dtype)
    for bi in range(B):
        for h in range(H):
            S = torch.zeros(n, v.shape[-1], dtype=q.dtype)
            z = torch.zeros(n, dtype=q.dtype)
            for t in range(T):
                a = math.exp(log_a[bi, t, h].item())
                S = a * S + torch.outer(b[bi, t, h], v[bi, t, h])
                z = a * z + b[bi, t, h]
                denom = q[bi, t, h] @ z if eta == "sum" else 1.0
                y[bi, t, h] = q[bi, t, h] @ S / denom
    return y


@pytest.mark.parametrize("eta", ["one", "sum"])
def test_gated_quadratic_equals_loop(eta):
    q, b, v = qkv(T=9)
    q, b = (q.abs(), b.abs()) if eta == "sum" else (q, b)
    log_a = F.logsigmoid(torch.randn(2, 9, 2, dtype=torch.float64))
    y = quadratic(q, b, v, Evolution(log_a), "identity", eta)
    assert_close("gated quadratic vs loop", gated_loop(q, b, v, log_a, eta), y, 1e-10)


def test_gated_preset_layer_equals_loop():
    torch.manual_seed(0)
    cfg = MixerConfig(n_heads=2, A="scalar_gate", phi="identity", eta="one", conv_size=4)
    mixer = CoeffMixer(16, cfg).double()
    u = torch.randn(2, 10, 16, dtype=torch.float64)
    q, b, v, evolution, _ = mixer.components(u)
    y = gated_loop(q, b, v, evolution.log_a, "one")
    assert_close("gated layer vs loop", mixer.out(y.flatten(2)), mixer(u), 1e-10)


def test_diag_gate_matches_loop_per_channel():
    q, b, v = qkv(T=6, n=4)
    log_a = F.logsigmoid(torch.randn(2, 6, 2, 4, dtype=torch.float64))
    y = quadratic(q, b, v, Evolution(log_a), "identity", "one")
    ref = torch.zeros_like(y)
    S = torch.zeros(2, 2, 4, v.shape[-1], dtype=torch.float64)
    for t in range(6):
        S = log_a[:, t].exp()[..., None] * S + b[:, t, :, :, None] * v[:, t, :, None, :]
        ref[:, t] = torch.einsum("bhn,bhnd->bhd", q[:, t], S)
    assert_close("diag gate vs loop", ref, y, 1e-10)


def test_coefficients_are_causal_and_normalised():
    q, b, v = qkv(T=12)
    alpha = coefficients(q.abs(), b.abs(), Evolution(torch.full((2, 12, 2), math.log(1.05), dtype=torch.float64)),
                         "identity", "sum")
    assert torch.all(alpha.triu(1) == 0)
    assert torch.allclose(alpha.sum(-1), torch.ones(2, 2, 12, dtype=torch.float64))


def test_overflow_is_not_clamped():
    q, b, v = qkv(T=256, dtype=torch.float32)
    y = quadratic(q, b, v, Evolution(torch.full((2, 256, 2), math.log(2.0))), "identity", "one")
    assert not torch.isfinite(y).all()


@pytest.mark.parametrize("phi", ["identity", "exp"])
def test_state_size_is_constant_only_for_linear_readout(phi):
    mixer = CoeffMixer(32, MixerConfig(n_heads=2, phi=phi))
    sizes = {mixer.state_size(L) for L in (64, 128)}
    assert (len(sizes) == 1) == (phi == "identity")


def test_mixer_knob_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"model\.mixer\.phi='tanh'"):
        MixerConfig(phi="tanh").check(64)
    with pytest.raises(ConfigError, match=r"model\.mixer\.n_heads=3"):
        MixerConfig(n_heads=3).check(64)
