"""Fixtures for every test: W&B off, one torch thread, the task cache in the test's tmp folder.

Shared helpers (compose, TINY, the CLI environment, PRESETS, assert_close) are in helpers.py.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("CDYN_BENCH_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
