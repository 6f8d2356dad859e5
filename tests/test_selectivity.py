"""Token roles of the recall tasks, and the share of coefficient mass on noise (a known answer: uniform attention)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY, compose

from cdyn_bench.mixer.introspect import noise_mass
from cdyn_bench.model import LanguageModel
from cdyn_bench.run import run
from cdyn_bench.tasks import IGNORE, TASKS
from cdyn_bench.tasks.roles import KEY, NOISE, QUERY, VALUE, FILLER, token_roles

NOISY = {"vocab_size": 32, "seq_len": 64, "noise_vocab_size": 16, "frac_noise": 0.4}


def test_noisy_recall_roles_follow_the_layout():
    ex = TASKS["noisy_icr"](200, np.random.default_rng(0), **NOISY)
    roles = token_roles("noisy_icr", NOISY, ex.inputs, ex.targets)
    assert np.array_equal(roles == QUERY, ex.targets != IGNORE)
    assert np.all(ex.inputs[roles == NOISE] >= 16) and np.all(ex.inputs[(roles == KEY) | (roles == VALUE)] < 16)
    assert 0.3 < (roles == NOISE).mean() < 0.5  # about frac_noise of the pairs


def test_mqar_roles_follow_the_layout():
    params = {"vocab_size": 64, "seq_len": 32, "num_kv_pairs": 4}
    ex = TASKS["mqar"](50, np.random.default_rng(0), **params)
    roles = token_roles("mqar", params, ex.inputs, ex.targets)
    assert np.all(roles[:, :8:2] == KEY) and np.all(roles[:, 1:8:2] == VALUE)
    assert np.array_equal(roles == QUERY, ex.targets != IGNORE) and np.all((roles[:, 8:] == QUERY) | (roles[:, 8:] == FILLER))
    with pytest.raises(ValueError, match="token roles are defined for"):
        token_roles("compression", {}, ex.inputs, ex.targets)


def test_uniform_attention_puts_the_noise_share_of_each_prefix_on_noise():
    """q = k = 0 makes softmax attention uniform over j <= i: the share is #noise(j <= i) / (i + 1)."""
    ex = TASKS["noisy_icr"](8, np.random.default_rng(1), **NOISY)
    roles = token_roles("noisy_icr", NOISY, ex.inputs, ex.targets)
    model = LanguageModel(compose("model=softmax", "model.d_model=16").model, vocab_size=32)
    for block in model.blocks:
        torch.nn.init.zeros_(block.mixer.proj.weight)
    shares = noise_mass(model, torch.from_numpy(ex.inputs), torch.from_numpy(roles), NOISE, QUERY)
    prefix = np.cumsum(roles == NOISE, axis=1) / np.arange(1, roles.shape[1] + 1)
    expected = prefix[roles == QUERY].mean()
    assert shares == pytest.approx([expected, expected], rel=1e-6)


def test_noisy_recall_runs_record_their_noise_mass(tmp_path):
    overrides = [o for o in TINY if not o.startswith("task.")] + ["task=noisy_icr", "task.seq_len=16", "task.num_train=0",
                                                                  "task.num_val=32", "task.num_test=32"]
    metrics = run(compose(*overrides), tmp_path).metrics
    assert 0 <= metrics["noise_mass_last_layer"] <= 1 and 0 <= metrics["noise_mass"] <= 1
    assert "noise_mass" not in run(compose(*overrides, "task.frac_noise=0.0"), tmp_path).metrics
