"""Spectra: known eigenvalues (softmax's eta ratios, a fixed gamma), bins, and the report from saved weights."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch
from helpers import PRESETS, TINY, compose

from cdyn_bench.mixer.introspect import inspect_model
from cdyn_bench.model import LanguageModel
from cdyn_bench.record import WEIGHTS
from cdyn_bench.run import run
from cdyn_bench.spectra import BINS, bin_shares, magnitudes, spectrum, write_spectra


def seen(*overrides):
    model = LanguageModel(compose(*overrides, "model.d_model=16").model, vocab_size=11).double()
    tokens = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(0))
    return inspect_model(model, tokens)[0]


def test_softmax_eigenvalues_are_the_ratios_of_consecutive_normalisers():
    s = seen("model=softmax")
    scores = s["scores"]
    eta = torch.exp(scores).nan_to_num(0.0).sum(-1)  # the definition, small scores: no overflow
    expected = (eta[..., :-1] / eta[..., 1:]).transpose(1, 2)[..., None].expand(-1, -1, -1, s["eigenvalues"].shape[-1])
    assert torch.allclose(magnitudes(s), expected)
    assert not torch.allclose(magnitudes(s), torch.ones_like(expected))


def test_a_fixed_gamma_with_eta_one_has_eigenvalue_gamma():
    s = seen("model=retnet", "model.mixer.gamma_heads=same", "model.mixer.gamma=0.7")
    assert torch.allclose(magnitudes(s), torch.full_like(magnitudes(s), 0.7))


def test_bins_cover_every_magnitude_once_with_closed_upper_edges():
    values = torch.tensor([[0.0, 0.1, 0.3, 0.9, 1.0, 5.0, 10.0, 100.0, 1e3, 0.95]], dtype=torch.float64)
    shares = bin_shares(values)[0]
    assert shares.sum() == pytest.approx(1.0)
    assert list(np.round(shares * 10).astype(int)) == [2, 1, 1, 2, 2, 1, 1]  # 0, 0.1 | 0.3 | 0.9 | 1, .95 | ...


def test_spectra_report_from_saved_weights(tmp_path):
    result = run(compose(*TINY, "train.save_weights=true"), tmp_path / "cells")
    directory = tmp_path / "cells" / result.run_dir.split("/")[-1]
    assert all((directory / name).exists() for name in WEIGHTS.values())
    table, files = write_spectra([tmp_path], tmp_path / "out")
    assert list(table["when"]) == ["init", "trained"] and all(f.exists() for f in files)
    assert np.allclose(table[BINS].sum(axis=1), 1.0)
    assert not np.isnan(table[BINS].to_numpy(dtype=float)).any()


def test_coefficient_maps_at_init_and_trained_with_roles(tmp_path):
    from cdyn_bench.maps import coefficient_maps, write_maps

    overrides = [o for o in TINY if not o.startswith("task.")] + ["task=noisy_icr", "task.seq_len=16", "task.num_train=0",
                                                                  "task.num_val=32", "task.num_test=32"]
    result = run(compose(*overrides, "train.save_weights=true"), tmp_path / "cells")
    record = tmp_path / "cells" / result.run_dir.split("/")[-1] / "result.json"
    maps, roles, _ = coefficient_maps(record)
    assert len(roles) == 15 and roles[-1] == "query" and set(roles) <= {"key", "value", "noise", "query"}
    init, trained = maps["init"][0], maps["trained"][0]
    assert init.shape == trained.shape == (2, 15, 15) and not np.allclose(init, trained)
    assert np.allclose(np.triu(trained, 1), 0)
    _, (png,) = write_maps([tmp_path], tmp_path / "maps")
    assert png.exists() and png.stat().st_size > 10_000


def test_known_answers_of_the_spectrum():
    """A = 1.05 I with eta = 1: every magnitude 1.05; softmax with all-equal scores: lambda_i = i / (i + 1)
    (0-based: eta_i = i + 1); a diagonal gate: its entries; a Householder step with |k| = 1, beta = 1:
    eigenvalues 0 and 1."""
    s = seen("model=softmax", "model.mixer.A=fixed", "model.mixer.gamma=1.05", "model.mixer.phi=identity",
             "model.mixer.eta=one")
    assert torch.allclose(magnitudes(s), torch.full_like(magnitudes(s), 1.05))
    model = LanguageModel(compose("model=softmax", "model.d_model=16").model, vocab_size=11).double()
    for block in model.blocks:
        torch.nn.init.zeros_(block.mixer.proj.weight)
    lam = magnitudes(inspect_model(model, torch.randint(0, 11, (2, 9)))[0])
    i = torch.arange(1, 9, dtype=torch.float64)
    assert torch.allclose(lam, ((i - 1 + 1) / (i + 1))[None, :, None, None].expand_as(lam))
    from cdyn_bench.mixer.components import Evolution
    from cdyn_bench.mixer.introspect import eigenvalues

    log_d = -torch.rand(1, 3, 2, 4, dtype=torch.float64)
    assert torch.allclose(eigenvalues(Evolution(log_d), log_d.shape, log_d), torch.exp(log_d))
    k = torch.nn.functional.normalize(torch.randn(1, 3, 2, 4, dtype=torch.float64), dim=-1)
    house = eigenvalues(Evolution(None, torch.ones(1, 3, 2, dtype=torch.float64), k), k.shape, k)
    assert torch.equal(house[..., 0], torch.zeros(1, 3, 2, dtype=torch.float64)) and (house[..., 1:] == 1).all()


def test_rows_without_a_normaliser_ratio_are_left_out_of_the_shares():
    values = torch.tensor([[0.05, float("nan"), float("inf"), 2.0], [float("nan")] * 4], dtype=torch.float64)
    shares = bin_shares(values)
    assert shares[0, 0] == pytest.approx(0.5) and shares[0, 4] == pytest.approx(0.5) and shares[0].sum() == 1
    assert np.isnan(shares[1]).all()


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_has_a_spectrum(preset):
    model = LanguageModel(compose(f"model={preset}", "model.d_model=16", "model.mixer.n_heads=2").model, vocab_size=11)
    rows = spectrum(model, torch.randint(0, 11, (3, 9), generator=torch.Generator().manual_seed(0)))
    shares = pd.DataFrame(rows).groupby(["layer", "head"])["share_mean"].sum()
    assert len(shares) == 2 * 2 and np.allclose(shares, 1.0)
