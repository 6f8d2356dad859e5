"""The mixer against independent references written from the published formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from helpers import assert_close, compose, run_fwd_bwd

from cdyn_bench.mixer import FORMS, CoeffMixer, MixerConfig, coefficients, quadratic
from cdyn_bench.mixer.scan import linear_scan
from cdyn_bench.mixer.components import Evolution, segsum
from cdyn_bench.registry import ConfigError

STATE_FORMS = ["quadratic", "recurrent", "chunked", "scan"]


def qkv(B=2, T=13, H=2, n=8, dv=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, T, H, d, generator=g, dtype=dtype) for d in (n, n, dv)]


@pytest.mark.parametrize("T", [1, 7, 64])
def test_softmax_form_equals_sdpa(T):
    q, k, v = qkv(T=T)
    y = quadratic(q, k / math.sqrt(q.shape[-1]), v, Evolution(None), "exp", "sum")
    ref = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    assert_close("softmax vs sdpa", ref.transpose(1, 2), y, 1e-12)


def test_softmax_preset_layer_equals_sdpa():
    torch.manual_seed(0)
    mixer = CoeffMixer(32, MixerConfig(n_heads=2, A="identity", phi="exp", eta="sum", scale_b=True)).double()
    u = torch.randn(2, 11, 32, dtype=torch.float64)
    q, k, v = (x.view(2, 11, 2, 16) for x in mixer.proj(u).split(32, dim=-1))
    ref = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    assert_close("layer vs sdpa", mixer.out(ref.transpose(1, 2).flatten(2)), mixer(u), 1e-12)


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


def test_state_size_counts_state_normaliser_and_conv_cache():
    H, n, dv, d = 2, 8, 16, 32
    plain = CoeffMixer(d, MixerConfig(n_heads=H, head_dim=n, value_dim=dv))
    assert plain.state_size(100) == H * n * dv
    mlstm = CoeffMixer(d, MixerConfig(n_heads=H, head_dim=n, value_dim=dv, eta="mlstm", conv_size=4))
    assert mlstm.state_size(100) == H * n * dv + H * (n + 1) + 3 * H * (2 * n + dv)
    softmax = CoeffMixer(d, MixerConfig(n_heads=H, head_dim=n, value_dim=dv, phi="exp", eta="sum", share_qk=True))
    # The KV cache keeps b_j per head (b may carry per-head gates), so share_qk does not shrink it.
    assert softmax.state_size(100) == 100 * H * (n + dv)


BAD_KNOBS = [
    (dict(phi="tanh"), r"model\.mixer\.phi='tanh'.*Allowed: identity"),
    (dict(n_heads=3), r"model\.mixer\.n_heads=3"),
    (dict(A="householdr"), r"model\.mixer\.A='householdr'.*Did you mean householder"),
    (dict(form="chunked", phi="exp"), r"model\.mixer\.form=chunked needs model\.mixer\.phi=identity.*Allowed forms"),
    (dict(form="recurrent", eta="abs_sum"), r"model\.mixer\.form=recurrent cannot compute model\.mixer\.eta=abs_sum"),
    (dict(form="scan", A="householder"), r"model\.mixer\.form=scan needs an elementwise A.*got A=householder"),
    (dict(b="delta_B", A="scalar_gate", gate="sigmoid"), r"model\.mixer\.b=delta_B needs .*gate=mamba"),
    (dict(A="scalar_gate", gamma_heads="retnet"), r"model\.mixer\.gamma_heads=retnet needs model\.mixer\.A=fixed"),
    (dict(A="scalar_gate", gate="mamba", rate_init="s4d_real"), r"model\.mixer\.rate_init=s4d_real"),
    (dict(gamma=0.0), r"model\.mixer\.gamma=0\.0"),
    (dict(gate="lstm"), r"model\.mixer\.gate='lstm'.*Allowed: sigmoid, mamba, mlstm"),
    (dict(dt_min=0.2, dt_max=0.1), r"model\.mixer\.dt_min=0\.2"),
    (dict(gate_temperature=-1.0), r"model\.mixer\.gate_temperature=-1\.0"),
    (dict(out_norm="group", value_dim=1), r"model\.mixer\.out_norm=group .*value_dim >= 2"),
]


@pytest.mark.parametrize("knobs,message", BAD_KNOBS, ids=[",".join(f"{k}={v}" for k, v in b.items()) for b, _ in BAD_KNOBS])
def test_mixer_knob_errors_name_the_key(knobs, message):
    with pytest.raises(ConfigError, match=message) as error:
        MixerConfig(**knobs).check(64)
    assert "\n" not in str(error.value)


def test_auto_form_is_chunked_only_where_it_can_run():
    assert MixerConfig(phi="identity", eta="mlstm").resolved_form() == "chunked"
    assert MixerConfig(phi="exp", eta="sum").resolved_form() == "quadratic"
    assert MixerConfig(phi="identity", eta="abs_sum").resolved_form() == "quadratic"
    assert CoeffMixer(16, MixerConfig(form="recurrent")).form == "recurrent"


def linear_attention_closed_form(q, k, v):
    """Katharopoulos et al. (2020): y_i = q_i^T S_i / q_i^T z_i, S_i = sum_{j<=i} k_j v_j^T, z_i = sum_{j<=i} k_j."""
    S = torch.cumsum(k[..., :, None] * v[..., None, :], dim=1)  # (B, T, H, n, dv)
    z = torch.cumsum(k, dim=1)
    return torch.einsum("bthn,bthnd->bthd", q, S) / torch.einsum("bthn,bthn->bth", q, z)[..., None]


@pytest.mark.parametrize("form", STATE_FORMS)
def test_linear_attention_equals_closed_form(form):
    q, k, v = (F.elu(x) + 1 if i < 2 else x for i, x in enumerate(qkv(T=70)))
    y = run_form(form, q, k, v, Evolution(), "sum")
    assert_close(f"{form} vs closed form", linear_attention_closed_form(q, k, v), y, 1e-10)


@pytest.mark.parametrize("decay_shape", [(2, 9, 3, 4, 1), (2, 9, 3, 1, 1)], ids=["diagonal", "scalar"])
def test_linear_scan_steps_the_recurrence_and_its_gradient_is_exact(decay_shape):
    g = torch.Generator().manual_seed(4)
    a = torch.rand(decay_shape, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 9, 3, 4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, 4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    h, expected = linear_scan(a, x, h0), []
    for t in range(9):
        expected.append(a[:, t] * (expected[-1] if expected else h0) + x[:, t])
    assert_close("scan vs loop", torch.stack(expected, 1), h, 1e-14)
    assert torch.autograd.gradcheck(linear_scan, (a, x, h0))


def run_form(form, q, b, v, evolution, eta, chunk_size=16):
    options = {"chunk_size": chunk_size} if form == "chunked" else {}
    return FORMS[form](q, b, v, evolution, "identity", eta, **options)


def delta_rule_loop(q, k, v, beta, log_a=None):
    """DeltaNet / Gated DeltaNet: S_t = a_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T, o_t = S_t q_t."""
    B, T, H, n = q.shape
    S = torch.zeros(B, H, v.shape[-1], n, dtype=q.dtype)
    out = torch.zeros_like(v)
    for t in range(T):
        k_t, b_t = k[:, t, :, None, :], beta[:, t, :, None, None]  # (B, H, 1, n), (B, H, 1, 1)
        a_t = torch.exp(log_a[:, t])[..., None, None] if log_a is not None else 1.0
        S = a_t * (S - b_t * (S @ k_t.transpose(-1, -2)) @ k_t) + b_t * v[:, t, :, :, None] @ k_t
        out[:, t] = (S @ q[:, t, :, :, None]).squeeze(-1)
    return out


@pytest.mark.parametrize("gated", [False, True], ids=["deltanet", "gated_deltanet"])
@pytest.mark.parametrize("form", [f for f in STATE_FORMS if f != "scan"])
def test_delta_rule_equals_explicit_loop(form, gated):
    q, k, v = qkv(T=45)
    k = F.normalize(k, dim=-1)
    beta = torch.sigmoid(torch.randn(2, 45, 2, dtype=torch.float64))
    log_a = F.logsigmoid(torch.randn(2, 45, 2, dtype=torch.float64) + 2) if gated else None
    y = run_form(form, q, beta[..., None] * k, v, Evolution(log_a, beta, k), "one")
    assert_close(f"{form} vs delta rule", delta_rule_loop(q, k, v, beta, log_a), y, 1e-10)


def ssd_scan(X, A, Bm, C, block_len):
    """Mamba-2's chunked segment-sum scan (`ssd_minimal_discrete`): X = x * dt, A = dt * a (B, T, H)."""
    X, A, Bm, C = (x.unflatten(1, (-1, block_len)) for x in (X, A, Bm, C))  # (B, c, l, ...)
    A = A.permute(0, 3, 1, 2)  # (B, H, c, l)
    A_cumsum = torch.cumsum(A, dim=-1)
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, Bm, torch.exp(segsum(A)), X)
    decay_states = torch.exp(A_cumsum[..., -1:] - A_cumsum)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", Bm, decay_states, X)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(A_cumsum[..., -1], (1, 0))))
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)[:, :-1]
    Y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, torch.exp(A_cumsum))
    return (Y_diag + Y_off).flatten(1, 2)


@pytest.mark.parametrize("form", STATE_FORMS)
def test_mamba2_equals_segment_sum_scan(form):
    C, Bm, x = qkv(T=48)
    dt = F.softplus(torch.randn(2, 48, 2, dtype=torch.float64) - 2)
    a = -torch.tensor([1.0, 12.0], dtype=torch.float64)
    y = run_form(form, C, dt[..., None] * Bm, x, Evolution(dt * a), "one")
    assert_close(f"{form} vs ssd", ssd_scan(x * dt[..., None], dt * a, Bm, C, 16), y, 1e-10)


def mlstm_loop(q, k, v, log_f, i_tilde):
    """xLSTM's stabilised mLSTM: m_t = max(log f_t + m_{t-1}, i~_t), C_t = f' C_{t-1} + i' v_t k_t^T,
    n_t = f' n_{t-1} + i' k_t, h_t = C_t q_t / max(|n_t^T q_t|, exp(-m_t)), f' = exp(log f_t + m_{t-1} - m_t),
    i' = exp(i~_t - m_t)."""
    B, T, H, n = q.shape
    C = torch.zeros(B, H, v.shape[-1], n, dtype=q.dtype)
    nrm = torch.zeros(B, H, n, dtype=q.dtype)
    m = torch.full((B, H), float("-inf"), dtype=q.dtype)
    h = torch.zeros_like(v)
    for t in range(T):
        m_new = torch.maximum(log_f[:, t] + m, i_tilde[:, t])
        f, i = torch.exp(log_f[:, t] + m - m_new), torch.exp(i_tilde[:, t] - m_new)
        C = f[..., None, None] * C + i[..., None, None] * v[:, t, :, :, None] * k[:, t, :, None, :]
        nrm = f[..., None] * nrm + i[..., None] * k[:, t]
        den = torch.maximum((nrm * q[:, t]).sum(-1).abs(), torch.exp(-m_new))
        h[:, t] = (C @ q[:, t, :, :, None]).squeeze(-1) / den[..., None]
        m = m_new
    return h


@pytest.mark.parametrize("form", STATE_FORMS)
def test_mlstm_equals_stabilised_recurrence(form):
    q, k, v = qkv(T=50)
    log_f = F.logsigmoid(torch.randn(2, 50, 2, dtype=torch.float64) + 3)
    i_tilde = 30 * torch.randn(2, 50, 2, dtype=torch.float64)
    y = run_form(form, q, k / math.sqrt(8), v, Evolution(log_f, log_i=i_tilde), "mlstm")
    assert_close(f"{form} vs mLSTM", mlstm_loop(q, k / math.sqrt(8), v, log_f, i_tilde), y, 1e-10)


def step_inputs(seed: int, kind: str, B=2, T=37, H=2, n=4, dv=3) -> dict:
    """Per-step inputs of a form (q, b, v and the evolution's tensors) for a kind of A_t."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    x = dict(q=r(B, T, H, n), b=r(B, T, H, n), v=r(B, T, H, dv))
    if kind in ("scalar", "gated_householder", "input_gate"):
        x["log_a"] = F.logsigmoid(r(B, T, H) + 2)
    if kind == "diagonal":
        x["log_a"] = F.logsigmoid(r(B, T, H, n) + 2)
    if kind in ("householder", "gated_householder"):
        x["beta"], x["direction"] = torch.sigmoid(r(B, T, H)), F.normalize(r(B, T, H, n), dim=-1)
    if kind == "input_gate":
        x["log_i"] = 3 * r(B, T, H)
    return x


def chunked_output(x: dict, eta: str, chunk_size: int = 8):
    evolution = Evolution(x.get("log_a"), x.get("beta"), x.get("direction"), x.get("log_i"))
    return FORMS["chunked"](x["q"], x["b"], x["v"], evolution, "identity", eta, chunk_size=chunk_size)


@pytest.mark.parametrize("t", [8, 16, 19, 36], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("eta", ["one", "sum", "mlstm"])
@pytest.mark.parametrize("kind", ["scalar", "diagonal", "householder", "gated_householder", "input_gate"])
def test_chunked_form_is_causal_across_chunk_boundaries(kind, eta, t):
    """T = 37 in chunks of 8: changing every input of step t leaves the outputs before t bit for bit."""
    x, other = step_inputs(0, kind), step_inputs(1, kind)
    changed = {key: value.clone() for key, value in x.items()}
    for key in changed:
        changed[key][:, t] = other[key][:, t]
    y, y_changed = chunked_output(x, eta), chunked_output(changed, eta)
    assert torch.equal(y[:, :t], y_changed[:, :t])
    assert (y[:, t:] - y_changed[:, t:]).abs().amax() > 1e-6


def relu_attention(q, b, v):
    """y_i = sum_j relu(q_i.b_j) v_j / sum_j relu(q_i.b_j), and 0 where the sum is 0, row by row."""
    B, T, H, _ = q.shape
    y = torch.zeros(B, T, H, v.shape[-1], dtype=q.dtype)
    for i in range(T):
        w = F.relu(torch.einsum("bhn,bjhn->bjh", q[:, i], b[:, : i + 1]))  # (B, i+1, H)
        total = w.sum(1)
        y[:, i] = torch.where(total[..., None] > 0, torch.einsum("bjh,bjhd->bhd", w, v[:, : i + 1])
                              / total.clamp_min(1e-300)[..., None], 0.0)
    return y


@pytest.mark.parametrize("eta", ["sum", "abs_sum"])
def test_relu_rows_with_only_negative_scores_are_zero(eta):
    q, b, v = qkv(T=9)
    b = b.abs()
    q[:, 0], q[:, 4] = -q[:, 0].abs(), -q[:, 4].abs()  # rows 0 and 4 see only negative scores
    inputs = dict(q=q, b=b, v=v)
    y, grads = run_fwd_bwd(lambda q, b, v: quadratic(q, b, v, Evolution(), "relu", eta), inputs)
    ref, ref_grads = run_fwd_bwd(relu_attention, inputs)
    assert torch.all(y[:, [0, 4]] == 0)
    assert_close(f"relu/{eta}", ref, y, 1e-12)
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), name
        assert_close(f"d/d{name}", ref_grads[name], grad, 1e-12)


@pytest.mark.parametrize("gated", [False, True], ids=["A=I", "A=a_t I"])
@pytest.mark.parametrize("form", STATE_FORMS)
def test_rows_whose_coefficients_are_all_zero_give_zero_in_every_form(form, gated):
    """phi = identity, eta = sum with q_i = 0: the row's coefficients and their sum are exactly 0."""
    q, b, v = qkv(T=21)
    q[:, 3], q[:, 17] = 0.0, 0.0
    q, b = q.abs(), b.abs()
    log_a = F.logsigmoid(torch.randn(2, 21, 2, dtype=torch.float64) + 2) if gated else None
    y, grads = run_fwd_bwd(lambda q, b, v: run_form(form, q, b, v, Evolution(log_a), "sum", chunk_size=8),
                           dict(q=q, b=b, v=v))
    ref = gated_loop(q, b, v, log_a if gated else torch.zeros(2, 21, 2, dtype=torch.float64), "sum")
    assert torch.all(y[:, [3, 17]] == 0) and torch.isnan(ref[:, [3, 17]]).all()
    keep = [i for i in range(21) if i not in (3, 17)]
    assert_close(f"{form} other rows", ref[:, keep], y[:, keep], 1e-10)
    assert all(torch.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize("k", [1, 2, 4])
def test_causal_conv_as_shifted_adds_equals_the_grouped_convolution(k):
    from cdyn_bench.mixer.layer import causal_conv

    torch.manual_seed(0)
    conv = nn.Conv1d(6, 6, k, groups=6, padding=k - 1).double()
    x = torch.randn(3, 11, 6, dtype=torch.float64, requires_grad=True)
    ref = conv(x.transpose(1, 2))[..., :11].transpose(1, 2)
    out = causal_conv(x, conv)
    assert torch.allclose(out, ref, atol=1e-12)
    grads = torch.autograd.grad(out.square().sum(), [x, conv.weight, conv.bias])
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, conv.weight, conv.bias])
    assert all(torch.allclose(g, r, atol=1e-12) for g, r in zip(grads, ref_grads))


def test_rotation_turns_each_channel_pair_and_its_gradient_turns_back():
    from cdyn_bench.mixer.layer import rotate

    torch.manual_seed(0)
    x = torch.randn(2, 7, 3, 8, dtype=torch.float64, requires_grad=True)
    out = rotate(x, start=5)
    # Pair i of position t turned by angle (t + 5) * 10000^(-2i/8), written out for every entry.
    positions = torch.arange(5, 12, dtype=torch.float64)[:, None]
    angle = (positions * 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8))[None, :, None]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    assert torch.allclose(out[..., 0::2], x1 * angle.cos() - x2 * angle.sin(), atol=1e-14)
    assert torch.allclose(out[..., 1::2], x1 * angle.sin() + x2 * angle.cos(), atol=1e-14)
    assert torch.autograd.gradcheck(lambda x: rotate(x, start=5), (x,))
    # A turn keeps lengths, so the gradient of |rotate(x)|^2 is that of |x|^2.
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    assert torch.allclose(grad, 2 * x, atol=1e-12)


@pytest.mark.parametrize("stabilise", [False, True])
def test_chunk_weights_without_decays_are_exp_of_zero_log_weights_bit_for_bit(stabilise):
    from cdyn_bench.mixer.chunked import input_weights
    from cdyn_bench.mixer.householder import gate_transport

    # What the general path computes when A has no scalar factor and there is no input gate.
    zeros = torch.zeros(2, 3, 4, 8)
    lw = segsum(zeros)
    rho = lw.amax(-1) if stabilise else torch.zeros_like(zeros)
    general = torch.exp(lw - rho[..., None])
    assert torch.equal(input_weights(None, rho, stabilise), general)
    assert torch.equal(gate_transport(zeros.cumsum(-1), rho), general)
    assert torch.equal(input_weights(lw, rho, stabilise), general)


def test_a_fixed_gamma_is_exact_in_float64_and_unchanged_in_float32():
    import math

    import torch

    from cdyn_bench.mixer.evolution_params import EvolutionParams

    for overrides in (["model=retnet"], ["model=softmax", "model.mixer.A=fixed", "model.mixer.gamma=1.05"]):
        cfg = compose(*overrides).model.mixer
        params = EvolutionParams(cfg, 16, 8)
        u, k = torch.zeros(1, 3, 16, dtype=torch.float64), torch.zeros(1, 3, cfg.n_heads, 8, dtype=torch.float64)
        log_a = params.double()(u, k)[0].log_a[0, 0]
        exact = [math.log(1 - 2.0 ** (-5 - h)) if cfg.gamma_heads == "retnet" else math.log(cfg.gamma)
                 for h in range(cfg.n_heads)]
        assert log_a.tolist() == exact
        assert torch.equal(params.float()(u.float(), k.float())[0].log_a[0, 0], torch.tensor(exact).float())
