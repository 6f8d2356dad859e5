"""The eleven presets: their knob mapping, the initial gate and decay distributions of each family,
introspection, and that each one trains."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_run
from test_config import group_names

from cdyn_bench.mixer.introspect import inspect_model
from cdyn_bench.model import LanguageModel
from cdyn_bench.run import run

# The table of design.md section 2: (A, b, phi, eta) per preset.
MAPPING = {
    "softmax": ("identity", "key", "exp", "sum"),
    "linear": ("identity", "feature", "identity", "sum"),
    "norm_attn": ("identity", "feature", "identity", "learned"),
    "retnet": ("fixed", "key", "identity", "one"),
    "mamba2": ("scalar_gate", "delta_B", "identity", "one"),
    "gla": ("diag_gate", "key", "identity", "one"),
    "s6": ("diag_gate", "delta_B", "identity", "one"),
    "deltanet": ("householder", "beta_key", "identity", "one"),
    "gated_deltanet": ("gated_householder", "beta_key", "identity", "one"),
    "mlstm": ("scalar_gate", "input_gate_key", "identity", "mlstm"),
    "gated": ("scalar_gate", "key", "identity", "one"),
}


def build(preset: str, vocab_size: int = 32) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(compose_run(f"model={preset}").model, vocab_size)


def mixers(model):
    return [block.mixer for block in model.blocks]


def test_presets_are_the_design_table():
    assert set(group_names("model")) == set(MAPPING)
    for preset, (A, b, phi, eta) in MAPPING.items():
        mixer = compose_run(f"model={preset}").model.mixer
        assert (mixer.A, mixer.b, mixer.phi, mixer.eta) == (A, b, phi, eta), preset


@pytest.mark.parametrize("preset", ["mamba2", "gated_deltanet", "s6"])
def test_mamba_gates_start_in_their_published_ranges(preset):
    rates = {"mamba2": (1.0, 16.0), "gated_deltanet": (0.0, 16.0), "s6": (1.0, 16.0)}[preset]
    for mixer in mixers(build(preset)):
        gate = mixer.evolution.gate
        dt = F.softplus(gate.dt_bias)
        assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
        rate = torch.exp(gate.A_log)
        assert rate.min() >= rates[0] and rate.max() <= rates[1] * (1 + 1e-6)
    if preset == "s6":
        assert mixer.cfg.n_heads == 64 and mixer.dv == 1 and mixer.n == 16
        assert torch.allclose(rate, torch.arange(1.0, 17.0).repeat(64, 1))


def test_retnet_gammas_are_exact():
    for mixer in mixers(build("retnet")):
        gammas = torch.exp(mixer.evolution.log_gamma.double())
        expected = 1 - 2.0 ** (-5 - torch.arange(mixer.cfg.n_heads, dtype=torch.float64))
        assert torch.allclose(gammas, expected, rtol=0, atol=1e-7)


def test_gla_gates_are_slow_through_the_temperature():
    mixer = mixers(build("gla"))[0]
    u = F.layer_norm(torch.randn(4, 50, 64), (64,))
    a = torch.exp(mixer.evolution(u, torch.randn(4, 50, 2, 16))[0].log_a)
    assert a.shape == (4, 50, 2, 16)
    assert 0.9 < a.min() and a.max() < 1.0 and abs(a.mean() - 0.5 ** (1 / 16)) < 0.01
    zero = torch.exp(mixer.evolution(torch.zeros(1, 1, 64), torch.zeros(1, 1, 2, 16))[0].log_a)
    assert torch.allclose(zero, torch.full_like(zero, 0.5 ** (1 / 16)), atol=1e-4)


def test_mlstm_gates_follow_xlstm():
    for mixer in mixers(build("mlstm")):
        forget, inp = mixer.evolution.gate, mixer.evolution.input_gate
        assert torch.allclose(forget.bias, torch.linspace(3.0, 6.0, 2), atol=1e-3)
        assert torch.all(forget.proj.weight == 0) and torch.all(inp.proj.weight == 0)
        assert inp.proj.bias.abs().max() < 0.5


def test_gated_preset_starts_in_its_gate_range():
    a = torch.sigmoid(mixers(build("gated"))[0].evolution.gate.proj.bias)
    assert torch.allclose(a, torch.tensor([0.9, 0.999]), atol=1e-6)


@pytest.mark.parametrize("preset", list(MAPPING))
def test_inspect_model_per_layer(preset):
    model = build(preset)
    records = inspect_model(model, torch.randint(0, 32, (2, 12)))
    assert len(records) == 2
    for mixer, record in zip(mixers(model), records):
        H, n = mixer.cfg.n_heads, mixer.n
        assert record["alpha"].shape == (2, H, 12, 12) and torch.all(record["alpha"].triu(1) == 0)
        assert record["eigenvalues"].shape == (2, 12, H, n) and record["eta"].shape == (2, H, 12)
        assert record["state_size"] == mixer.state_size(12)
        if mixer.cfg.eta == "sum":
            assert torch.allclose(record["alpha"].sum(-1), torch.ones(2, H, 12), atol=1e-5)


def test_householder_eigenvalues_are_a_times_one_minus_beta_and_ones():
    model = build("gated_deltanet")
    tokens = torch.randint(0, 32, (2, 9))
    lam = inspect_model(model, tokens)[0]["eigenvalues"]
    u = model.blocks[0].norm1(model.embed(tokens))
    evolution = model.blocks[0].mixer.components(u)[3]
    a = torch.exp(evolution.log_a)
    assert torch.allclose(lam[..., 0], a * (1 - evolution.beta))
    assert torch.allclose(lam[..., 1:], a[..., None].expand_as(lam[..., 1:]))


def test_retnet_eigenvalues_are_the_gammas():
    lam = inspect_model(build("retnet"), torch.randint(0, 32, (1, 5)))[1]["eigenvalues"]
    assert torch.allclose(lam[0, 0, :, 0], torch.tensor([1 - 2**-5, 1 - 2**-6]))


def train_losses(preset, tmp_path, steps, every):
    cfg = compose_run(f"model={preset}", f"train.max_steps={steps}", f"train.eval_every={every}",
                      "train.warmup_steps=10", "train.num_threads=1", "task.num_val=128", "task.num_test=128",
                      "progress=false", "wandb=disabled")
    result = run(cfg, tmp_path)
    assert result.status == "completed"
    return [h["train_loss"] for h in result.history]


@pytest.mark.parametrize("preset", ["gated", "mamba2"])
def test_preset_loss_decreases_quickly(preset, tmp_path):
    losses = train_losses(preset, tmp_path, 60, 30)
    assert losses[-1] < losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(MAPPING))
def test_preset_trains_200_steps(preset, tmp_path):
    losses = train_losses(preset, tmp_path, 200, 50)
    assert losses[-1] < losses[0] - 0.05, losses


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(MAPPING))
def test_cdyn_run_every_preset(preset, tmp_path):
    script = str(Path(sys.executable).parent / "cdyn-run")
    env = {"WANDB_MODE": "disabled", "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    proc = subprocess.run([script, f"model={preset}", "task=mqar", "train.max_steps=50", "progress=false"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "outputs" / "runs").glob("*/result.json"))


def test_invalid_combination_exits_2_naming_the_knob(tmp_path):
    script = str(Path(sys.executable).parent / "cdyn-run")
    env = {"WANDB_MODE": "disabled", "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    proc = subprocess.run([script, "model=softmax", "model.mixer.form=chunked"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "model.mixer.form=chunked" in lines[0] and "model.mixer.phi=identity" in lines[0]
