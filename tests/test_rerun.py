"""cdyn_bench.rerun (scripts/rerun.py): a committed record trained again gives the same numbers, and a changed one is caught."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

from helpers import TINY, cdyn_run, cli_env

from cdyn_bench import rerun

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "rerun.py"


def test_a_kind_is_the_config_up_to_seed_and_learning_rate():
    config = {"seed": 0, "model": {"d_model": 32}, "train": {"lr": 1e-3, "max_steps": 10}}
    other = copy.deepcopy(config)
    other["seed"], other["train"]["lr"] = 2, 3e-3
    wider = copy.deepcopy(config)
    wider["model"]["d_model"] = 64
    assert rerun.kind(config) == rerun.kind(other) != rerun.kind(wider)


def test_a_rerun_reproduces_a_sweeps_records_and_catches_a_changed_one(tmp_path):
    sweep = tmp_path / "sweep"
    assert cdyn_run(tmp_path, "-m", "model=gated", "seed=0,1", *TINY, f"hydra.sweep.dir={sweep}").returncode == 0
    command = [sys.executable, str(SCRIPT), str(sweep), "--jobs", "1"]
    same = subprocess.run(command, capture_output=True, text=True, env=cli_env(tmp_path), cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    assert " yes " in same.stdout and "total" in same.stdout

    for path in sweep.glob("cells/*/result.json"):  # one record of the kind is rerun: change both
        record = json.loads(path.read_text())
        record["metrics"]["test_accuracy"] += 0.5
        path.write_text(json.dumps(record))
    changed = subprocess.run(command, capture_output=True, text=True, env=cli_env(tmp_path), cwd=tmp_path)
    assert changed.returncode == 1 and "no: metrics" in changed.stdout
