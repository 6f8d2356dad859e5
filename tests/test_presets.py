"""The eleven presets behave as their papers say: initial gates and decays, normalised q and k, Mamba-2's
gated width norm, which parameters decay, introspection, and that they train."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import PRESETS, assert_close, cdyn_run, compose

from cdyn_bench.config import TrainConfig
from cdyn_bench.mixer.forms import quadratic
from cdyn_bench.mixer.components import PHIS
from cdyn_bench.mixer.introspect import inspect_model, log_normaliser
from cdyn_bench.model import LanguageModel
from cdyn_bench.run import run
from cdyn_bench.train import make_optimizer, parameter_groups


def build(preset: str, *overrides: str, vocab_size: int = 32) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(compose(f"model={preset}", *overrides).model, vocab_size)


def mixers(model):
    return [block.mixer for block in model.blocks]


def block_input(d_model: int = 64, B: int = 3, T: int = 11) -> torch.Tensor:
    return F.layer_norm(torch.randn(B, T, d_model, generator=torch.Generator().manual_seed(4)), (d_model,))


def decay_of(mixer, u: torch.Tensor) -> torch.Tensor:
    """a_t (B, T, H[, n]) of A_t = a_t ... for block input u."""
    return torch.exp(mixer.components(u)[3].log_a)


def test_retnet_decays_are_one_minus_two_to_the_minus_five_minus_h():
    for mixer in mixers(build("retnet")):
        gamma = decay_of(mixer, block_input()).double()
        expected = 1 - 2.0 ** (-5 - torch.arange(mixer.cfg.n_heads, dtype=torch.float64))
        assert gamma.shape == (3, 11, 2)
        assert torch.allclose(gamma, expected.expand_as(gamma), rtol=0, atol=1e-7)


def test_mlstm_forget_gate_spans_sigmoid_3_to_6_over_heads_whatever_the_input():
    for mixer in mixers(build("mlstm", "model.mixer.n_heads=4")):
        forget = decay_of(mixer, block_input())
        expected = torch.sigmoid(torch.linspace(3.0, 6.0, 4))
        assert torch.allclose(forget, expected.expand_as(forget), atol=1e-6)
        gate = mixer.evolution.input_gate
        assert torch.all(gate.proj.weight == 0) and gate.proj.bias.abs().max() < 0.5


def test_gla_gate_is_half_to_the_one_sixteenth_at_zero_input_and_slow_otherwise():
    mixer = mixers(build("gla"))[0]
    zero = decay_of(mixer, torch.zeros(1, 2, 64))
    assert zero.shape == (1, 2, 2, 16)
    assert torch.allclose(zero, torch.full_like(zero, 0.5 ** (1 / 16)), atol=1e-6)
    a = decay_of(mixer, block_input())
    assert 0.9 < a.min() and a.max() < 1.0 and not torch.allclose(a, zero[:1, :1].expand_as(a))


def test_gated_preset_gates_span_its_range_at_zero_input():
    a = decay_of(mixers(build("gated"))[0], torch.zeros(1, 1, 64))
    assert torch.allclose(a.flatten(), torch.tensor([0.9, 0.999]), atol=1e-6)


@pytest.mark.parametrize("preset, rates", [("mamba2", (1.0, 16.0)), ("gated_deltanet", (0.0, 16.0)),
                                           ("s6", (1.0, 16.0))])
def test_mamba_gates_start_in_their_published_ranges(preset, rates):
    for mixer in mixers(build(preset)):
        gate = mixer.evolution.gate
        dt = F.softplus(gate.dt_bias)
        assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
        rate = torch.exp(gate.A_log)
        assert rate.min() >= rates[0] and rate.max() <= rates[1] * (1 + 1e-6)
        # At zero input a_t = exp(-Delta r) with Delta = softplus(dt_bias).
        a = decay_of(mixer, torch.zeros(1, 1, 64))[0, 0]
        expected = torch.exp(-(dt[:, None] if preset == "s6" else dt) * rate)
        assert torch.allclose(a, expected, rtol=1e-6)
    if preset == "s6":
        assert mixer.cfg.n_heads == 64 and mixer.dv == 1 and mixer.n == 16
        assert torch.allclose(rate, torch.arange(1.0, 17.0).repeat(64, 1))


@pytest.mark.parametrize("preset", ["deltanet", "gated_deltanet"])
def test_deltanet_normalises_queries_and_keys(preset):
    for mixer in mixers(build(preset)):
        q, b, _, evolution, _ = mixer.components(block_input() * 5)
        ones = torch.ones(q.shape[:3])
        assert_close("|q|", ones, q.norm(dim=-1), 1e-6)
        assert_close("|k|", ones, evolution.direction.norm(dim=-1), 1e-6)
        # b = beta_t k_t / sqrt(n) with the same unit k_t that the Householder part reflects.
        assert_close("b", evolution.beta[..., None] * evolution.direction / math.sqrt(mixer.n), b, 1e-6)


def test_mamba2_gates_then_normalises_over_the_whole_width():
    mixer = mixers(build("mamba2"))[0].double()
    with torch.no_grad():
        mixer.out_norm.weight.copy_(torch.linspace(0.5, 1.5, mixer.out_norm.weight.numel()))
    u = block_input().double()
    q, b, v, evolution, _ = mixer.components(u)
    y = quadratic(q, b, v, evolution, "identity", "one").flatten(2)  # (B, T, H*dv)
    gated = y * F.silu(mixer.out_gate(u))
    normed = gated / gated.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt() * mixer.out_norm.weight
    assert gated.shape[-1] == mixer.cfg.n_heads * mixer.dv == 64
    assert_close("mamba2 mixer", mixer.out(normed), mixer(u), 1e-10)
    # Normalising each head, or normalising before the gate, is a different function.
    per_head = gated.unflatten(-1, (2, -1))
    per_head = (per_head / per_head.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt()).flatten(-2)
    assert (mixer.out(per_head * mixer.out_norm.weight) - mixer(u)).abs().max() > 1e-3


def exempt(model) -> set[str]:
    """Parameters that must not decay: biases, norm scales, and the evolution's rates, offsets and logits."""
    norms = (torch.nn.LayerNorm, torch.nn.RMSNorm, torch.nn.GroupNorm)
    names = {f"{m_name}.{p_name}" for m_name, module in model.named_modules() if isinstance(module, norms)
             for p_name, _ in module.named_parameters(recurse=False)}
    leaf = ("bias", "dt_bias", "A_log", "logit")
    return names | {n for n, _ in model.named_parameters() if n.rsplit(".", 1)[-1] in leaf}


GROUP_CASES = [(p, ()) for p in PRESETS] + [("gated", ("model.mixer.A=learned_scalar",)),
                                             ("softmax", ("model.pos_emb=learned",))]


@pytest.mark.parametrize("preset, overrides", GROUP_CASES, ids=[" ".join((p, *o)) for p, o in GROUP_CASES])
def test_weight_decay_groups(preset, overrides):
    model = build(preset, *overrides)
    params = dict(model.named_parameters())
    groups = parameter_groups(model, TrainConfig())
    assert sorted(groups["decay"] + groups["no_decay"]) == sorted(params)
    assert set(groups["no_decay"]) == exempt(model)
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert linear <= set(groups["decay"]) and all(params[n].dim() >= 2 for n in groups["decay"])
    if preset == "s6":
        a_log = [n for n in groups["no_decay"] if n.endswith("A_log")]
        assert len(a_log) == 2 and all(params[n].dim() == 2 for n in a_log)
    assert parameter_groups(model, TrainConfig(weight_decay_on="all")) == {"decay": list(params), "no_decay": []}


def test_the_optimiser_decays_the_decay_group_only():
    model = build("mamba2")
    cfg = TrainConfig(weight_decay=0.3, betas=[0.8, 0.95])
    decay, no_decay = make_optimizer(model, cfg).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    groups = parameter_groups(model, cfg)
    assert [names[id(p)] for p in decay["params"]] == groups["decay"] and decay["weight_decay"] == 0.3
    assert [names[id(p)] for p in no_decay["params"]] == groups["no_decay"] and no_decay["weight_decay"] == 0.0
    assert decay["betas"] == (0.8, 0.95) and decay["lr"] == cfg.lr


@pytest.mark.parametrize("preset", PRESETS)
def test_inspect_model_per_layer(preset):
    model = build(preset)
    records = inspect_model(model, torch.randint(0, 32, (2, 12), generator=torch.Generator().manual_seed(0)))
    assert len(records) == 2
    for mixer, record in zip(mixers(model), records):
        H, n = mixer.cfg.n_heads, mixer.n
        assert record["alpha"].shape == (2, H, 12, 12) and torch.all(record["alpha"].triu(1) == 0)
        assert record["eigenvalues"].shape == (2, 12, H, n) and record["eta"].shape == (2, H, 12)
        assert record["state_size"] == mixer.state_size(12)
        if mixer.cfg.eta == "sum":
            assert torch.allclose(record["alpha"].sum(-1), torch.ones(2, H, 12, dtype=torch.float64), atol=1e-5)


def test_householder_eigenvalues_are_a_times_one_minus_beta_and_ones():
    model = build("gated_deltanet")
    tokens = torch.randint(0, 32, (2, 9), generator=torch.Generator().manual_seed(0))
    lam = inspect_model(model, tokens)[0]["eigenvalues"]
    u = model.blocks[0].norm1(model.embed(tokens))
    evolution = model.blocks[0].mixer.components(u)[3]
    a, beta = torch.exp(evolution.log_a.double()), evolution.beta.double()
    assert torch.allclose(lam[..., 0], a * (1 - beta))
    assert torch.allclose(lam[..., 1:], a[..., None].expand_as(lam[..., 1:]))


def test_retnet_eigenvalues_are_the_gammas():
    lam = inspect_model(build("retnet"), torch.randint(0, 32, (1, 5)))[1]["eigenvalues"]
    assert torch.allclose(lam[0, 0, :, 0], torch.tensor([1 - 2**-5, 1 - 2**-6], dtype=torch.float64))


def train_losses(preset, tmp_path, steps, every, *overrides):
    cfg = compose(f"model={preset}", f"train.max_steps={steps}", f"train.eval_every={every}",
                  "train.warmup_steps=10", "train.num_threads=1", "task.num_val=128", "task.num_test=128",
                  "progress=false", "wandb=disabled", *overrides)
    result = run(cfg, tmp_path)
    assert result.status == "completed" and len(result.history) == steps // every
    return [h["train_loss"] for h in result.history]


@pytest.mark.parametrize("preset", ["gated", "mamba2"])
def test_preset_loss_decreases_quickly(preset, tmp_path):
    losses = train_losses(preset, tmp_path, 40, 20, "task.seq_len=32", "train.batch_size=32")
    assert losses[-1] < losses[0] - 0.1, losses


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_200_steps(preset, tmp_path):
    losses = train_losses(preset, tmp_path, 200, 50)
    assert losses[-1] < losses[0] - 0.05, losses


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_cdyn_run_every_preset(preset, tmp_path):
    proc = cdyn_run(tmp_path, f"model={preset}", "task=mqar", "train.max_steps=50", "train.num_threads=1",
                    "progress=false", timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "outputs" / "runs").glob("*/result.json"))) == 1


def test_invalid_combination_exits_2_naming_the_knob(tmp_path):
    proc = cdyn_run(tmp_path, "model=softmax", "model.mixer.form=chunked")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "model.mixer.form=chunked" in lines[0] and "model.mixer.phi=identity" in lines[0]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("phi,eta", [("exp", "sum"), ("softplus", "sum"), ("identity", "abs_sum"), ("elu1", "mlstm"),
                                     ("exp", "one")])
def test_log_normaliser_is_the_log_of_the_definition(phi, eta):
    """log eta_i in log space equals log of eta_i summed directly (float64, scores small enough)."""
    torch.manual_seed(0)
    scores = torch.randn(2, 3, 7, 7, dtype=torch.float64).masked_fill(~torch.ones(7, 7).tril().bool(), float("-inf"))
    raw = PHIS[phi](scores.masked_fill(scores == float("-inf"), 0.0)).tril()
    direct = {"one": torch.ones_like(raw[..., 0]), "sum": raw.sum(-1), "abs_sum": raw.abs().sum(-1),
              "mlstm": raw.sum(-1).abs().clamp_min(1.0)}[eta]
    assert torch.allclose(log_normaliser(scores, phi, eta, None), torch.log(direct.abs()), atol=1e-12)


def test_log_normaliser_of_softmax_is_finite_where_exp_overflows():
    scores = torch.tensor([[[[1000.0, float("-inf")], [2000.0, 2000.0]]]], dtype=torch.float64)
    assert torch.allclose(log_normaliser(scores, "exp", "sum", None), torch.tensor([[[1000.0, 2000.0 + math.log(2)]]],
                                                                                 dtype=torch.float64))


def test_without_pre_norm_the_mixer_reads_the_residual_stream():
    normed, raw = build("gated"), build("gated", "model.pre_norm=false")
    assert isinstance(raw.blocks[0].norm1, torch.nn.Identity) and isinstance(raw.blocks[0].norm2, torch.nn.LayerNorm)
    raw.load_state_dict(normed.state_dict(), strict=False)
    tokens = torch.randint(0, 32, (2, 9), generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(normed(tokens), raw(tokens))
