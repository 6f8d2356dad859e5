"""End to end: the console script in a temp dir, records, skip/force, determinism, bad input, divergence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, compose_run

from cdyn_bench.record import RESULT, read_result
from cdyn_bench.run import run

CDYN_RUN = str(Path(sys.executable).parent / "cdyn-run")


def cdyn_run(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {"WANDB_MODE": "disabled", "PATH": str(Path(sys.executable).parent), "HOME": str(cwd)}
    return subprocess.run([CDYN_RUN, *overrides], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_console_script_writes_a_valid_record(tmp_path):
    proc = cdyn_run(tmp_path, "model=gated", "task=mqar", *TINY)
    assert proc.returncode == 0, proc.stderr
    (path,) = (tmp_path / "outputs" / "runs").glob(f"*/{RESULT}")
    record = json.loads(path.read_text())
    assert record["status"] == "completed"
    assert set(record["metrics"]) >= {"test_accuracy", "val_accuracy", "train_loss"}
    assert 0.0 <= record["metrics"]["test_accuracy"] <= 1.0
    assert record["steps"] == 20 and len(record["history"]) == 2
    assert record["config"]["model"]["name"] == "gated" and record["n_params"] > 0
    assert set(record["versions"]) >= {"python", "torch", "cdyn_bench"}
    assert "test accuracy" in proc.stdout and path.parent.name in proc.stdout


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    cfg = compose_run(*TINY)
    first = run(cfg, tmp_path / "a")
    second = run(cfg, tmp_path / "b")
    assert first.metrics == second.metrics and first.history[-1]["train_loss"] == second.history[-1]["train_loss"]
    assert first.config_hash == second.config_hash


def test_finished_run_is_skipped_unless_forced(tmp_path):
    first = run(compose_run(*TINY), tmp_path)
    again = run(compose_run(*TINY), tmp_path)
    assert again.skipped and again.metrics == first.metrics
    forced = run(compose_run(*TINY, "force=true"), tmp_path)
    assert not forced.skipped and forced.run_dir == first.run_dir
    assert read_result(Path(first.run_dir) / RESULT).status == "completed"


def test_a_different_seed_is_a_different_run(tmp_path):
    a, b = run(compose_run(*TINY), tmp_path), run(compose_run(*TINY, "seed=1"), tmp_path)
    assert a.run_dir != b.run_dir and not b.skipped


def test_overflowing_model_ends_diverged(tmp_path):
    cfg = compose_run(*TINY, "model.mixer.A=fixed", "model.mixer.gamma=2.0", "model.mixer.eta=one",
                      "task.seq_len=256", "task.num_kv_pairs=8")
    result = run(cfg, tmp_path)
    assert result.status == "diverged" and result.diverged_at == 1
    assert read_result(Path(result.run_dir) / RESULT).status == "diverged"


BAD_INPUTS = [
    (["model=glaa"], "model"),
    (["task=mqr"], "task"),
    (["train.not_a_key=1"], "train.not_a_key"),
    (["train.lr=fast"], "train.lr"),
    (["train.lr=-0.1"], "train.lr"),
    (["model.mixer.n_heads=3"], "model.mixer.n_heads"),
    (["model.mixer.phi=tanh"], "model.mixer.phi"),
    (["task.num_kv_pairs=20"], "task.num_kv_pairs"),
    (["task.vocab_size=8"], "task.vocab_size"),
]


@pytest.mark.parametrize("overrides,key", BAD_INPUTS, ids=[o[0] for o, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_naming_the_key(tmp_path, overrides, key):
    proc = cdyn_run(tmp_path, *overrides)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_rotary_with_odd_head_dim_is_a_config_error():
    from cdyn_bench.registry import ConfigError

    with pytest.raises(ConfigError, match="model.pos_emb=rotary"):
        compose_run("model=softmax", "model.mixer.head_dim=7")


def test_record_names_the_form_that_ran(tmp_path):
    result = run(compose_run(*TINY, "model=mamba2"), tmp_path)
    assert result.forms == ["chunked"]


def test_sequence_longer_than_the_position_table_is_a_config_error(tmp_path):
    from cdyn_bench.registry import ConfigError

    with pytest.raises(ConfigError, match="task.seq_len=64"):
        run(compose_run(*TINY, "model.pos_emb=learned", "model.max_len=32", "task.seq_len=64"), tmp_path)


def test_target_accuracy_above_one_never_stops_early(tmp_path):
    result = run(compose_run(*TINY, "train.target_accuracy=2"), tmp_path)
    assert result.steps == 20
