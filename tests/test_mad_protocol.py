"""The MAD protocol experiments: settings are MAD's one-factor grid, every cell composes, a sweep launches."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from helpers import BIN, cli_env, compose, sweep_jobs

from cdyn_bench import mad_protocol as make

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ROOT / "conf" / "mad_setting"

# MAD's configs/tasks/*.yml: 1 baseline + the number of change values.
MAD_COUNTS = {"icr": 11, "noisy_icr": 14, "fuzzy_icr": 11, "selective_copy": 13, "compression": 11,
              "memorization": 6}
OPTIMISER_GRID = {(lr, wd) for lr in (1e-4, 5e-4, 1e-3) for wd in (0.0, 0.1)}


def stems(scale: str) -> list[str]:
    return sorted(p.stem for p in (SETTINGS / scale).glob("*.yaml"))


def load(scale: str, stem: str) -> dict:
    return yaml.safe_load((SETTINGS / scale / f"{stem}.yaml").read_text())


def test_setting_files_are_what_the_script_writes():
    proc = subprocess.run([sys.executable, ROOT / "scripts" / "make_mad_settings.py", "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("scale", make.SCALES)
def test_settings_are_mads_baselines_and_one_factor_changes(scale):
    names = stems(scale)
    assert Counter(n.split("-")[0] for n in names) == MAD_COUNTS
    for name in names:
        task = name.split("-")[0]
        setting = load(scale, name)["task"]
        baseline = load(scale, f"{task}-baseline")["task"]
        changed = {k for k in baseline if setting[k] != baseline[k]}
        assert changed == (set() if name.endswith("baseline") else {name.split("-")[1]}), name
        if not name.endswith("baseline"):
            assert str(setting[name.split("-")[1]]) == name.split("-")[2]


def test_full_scale_is_mads_own_table():
    assert load("full", "noisy_icr-baseline")["task"] == dict(
        vocab_size=32, noise_vocab_size=16, seq_len=128, num_train=12800, frac_noise=0.2, num_val=1280,
        num_test=1280)
    assert load("full", "selective_copy-num_tokens_to_copy-96")["task"]["seq_len"] == 256
    # 200 epochs at batch 128: 100 steps an epoch for 12,800 examples, 2 for memorisation's 256.
    assert load("full", "icr-baseline")["train"]["max_steps"] == 20000
    assert load("full", "memorization-baseline")["train"]["max_steps"] == 400
    assert load("cpu", "icr-seq_len-256")["train"]["max_steps"] == 2000


@pytest.mark.parametrize("scale", make.SCALES)
def test_every_setting_composes_into_a_valid_task(scale):
    experiment = make.SCALES[scale].experiment
    for name in stems(scale):
        cfg = compose(f"+experiment={experiment}", f"+mad_setting/{scale}={name}", "model=softmax")
        task = cfg.task
        assert task.name == name.split("-")[0]
        setting = load(scale, name)["task"]
        params = {k: v for k, v in setting.items() if k not in ("num_train", "num_val", "num_test")}
        assert params.items() <= task.params.items()
        assert (task.num_train, task.num_val, task.num_test) == (
            setting["num_train"], setting["num_val"], setting["num_test"])
        assert cfg.train.batch_size == make.SCALES[scale].batch_size
        assert cfg.train.max_steps == make.max_steps(task.num_train, make.SCALES[scale])


@pytest.mark.parametrize("scale", make.SCALES)
def test_experiment_sweeps_every_setting_times_the_optimiser_grid(scale):
    experiment = make.SCALES[scale].experiment
    raw = yaml.safe_load((ROOT / "conf" / "experiment" / f"{experiment}.yaml").read_text())
    assert raw["hydra"]["mode"] == "MULTIRUN" and raw["sweep_name"] == experiment
    jobs = sweep_jobs(f"+experiment={experiment}", "model=softmax")
    cells = set()
    for job in jobs:
        choice = dict(o.split("=", 1) for o in job)
        cells.add((choice[f"+mad_setting/{scale}"], float(choice["train.lr"]), float(choice["train.weight_decay"])))
    assert len(jobs) == len(cells) == 396
    assert cells == {(s, lr, wd) for s in stems(scale) for lr, wd in OPTIMISER_GRID}


def test_two_cells_of_the_cpu_protocol_launch(tmp_path):
    proc = subprocess.run(
        [str(BIN / "cdyn-run"), "+experiment=mad_protocol", "model=softmax",
         "+mad_setting/cpu=icr-baseline,compression-baseline", "train.lr=1e-3", "train.weight_decay=0.0",
         "train.max_steps=3", "train.eval_every=3", "train.num_threads=1", "progress=false"],
        cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    cells = tmp_path / "outputs/sweeps/mad_protocol/cells"
    records = sorted((json.loads(p.read_text()) for p in cells.glob("*/result.json")),
                     key=lambda r: r["config"]["task"]["name"])
    assert [r["config"]["task"]["name"] for r in records] == ["compression", "icr"]
    assert [r["config"]["task"]["seq_len"] for r in records] == [16, 32]
    assert [r["config"]["task"]["readout"] for r in records] == ["last_position", "lm"]
    for r in records:
        train = r["config"]["train"]
        assert (train["batch_size"], train["lr"], train["weight_decay"], train["warmup_steps"]) == (64, 1e-3, 0.0, 0)
        assert r["steps"] == 3 and r["status"] == "completed" and r["run_dir"].startswith("cells/")
