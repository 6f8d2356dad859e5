"""The README's sample output is what `cdyn-run model=gated task=mqar` prints for the parts fixed before
training: the record's config hash, the parameter count and the state size."""

from __future__ import annotations

import re
from pathlib import Path

from cdyn_bench import record
from cdyn_bench.data import TaskData
from cdyn_bench.model import LanguageModel
from helpers import compose

README = Path(__file__).resolve().parents[1] / "README.md"


def sample() -> str:
    text = README.read_text()
    return text[text.index("## What a run prints"):text.index("## Common overrides")]


def test_the_readme_sample_names_the_record_params_and_state_size_the_command_gives():
    cfg = compose("model=gated", "task=mqar")
    digest = record.config_hash(cfg.identity())
    data = TaskData(cfg.task, cfg.seed, cfg.train.batch_size)
    model = LanguageModel(cfg.model, data.vocab_size, readout=cfg.task.readout)
    shown = sample()
    assert f"outputs/runs/gated-mqar-{digest[:12]}/result.json" in shown
    params = re.search(r"parameters\s+│\s+([\d,]+)", shown).group(1)
    state = re.search(r"state size\s+│\s+([\d,]+) floats", shown).group(1)
    assert int(params.replace(",", "")) == sum(p.numel() for p in model.parameters())
    assert int(state.replace(",", "")) == model.state_size(data.seq_len)
