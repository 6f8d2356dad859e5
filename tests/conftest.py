"""Shared fixtures: W&B off, a small thread count, composed configs."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _quiet_environment(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    torch.set_num_threads(1)


TINY = (
    "model.d_model=16", "model.n_layers=1", "task.seq_len=16", "task.num_kv_pairs=2", "task.vocab_size=32",
    "task.num_val=32", "task.num_test=32", "train.batch_size=8", "train.max_steps=20", "train.eval_every=10",
    "train.warmup_steps=2", "progress=false", "wandb=disabled",
)


def compose_run(*overrides: str):
    """RunConfig composed from conf/ exactly as cdyn-run does, with command-line style overrides."""
    from hydra import compose, initialize_config_module

    from cdyn_bench.config import register_schema, to_run_config

    register_schema()
    with initialize_config_module(config_module="cdyn_bench.conf", version_base="1.3"):
        return to_run_config(compose(config_name="config", overrides=list(overrides)))
