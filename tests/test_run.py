"""End to end: the console script in a temp dir, records, skip/force, determinism, a known answer, early stop,
the learning-rate schedule, bad input, divergence."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
from helpers import TINY, cdyn_run, compose

from cdyn_bench import NUMERICS_VERSION
from cdyn_bench.choices import EXTREMES
from cdyn_bench.compose import from_record
from cdyn_bench.config import TrainConfig
from cdyn_bench.mixer import normalisers
from cdyn_bench.mixer.components import divide_or_zero
from cdyn_bench.record import RESULT, WEIGHTS, config_hash, read_result
from cdyn_bench.registry import ConfigError
from cdyn_bench.run import run
from cdyn_bench.train import schedule

# A fixed key -> value map over 16 tokens (memorisation): one block learns it in a few dozen steps.
LOOKUP = (*(o for o in TINY if not o.startswith("task.")), "task=memorization", "task.vocab_size=16",
          "task.seq_len=8", "task.num_train=0", "task.num_val=64", "task.num_test=64", "train.lr=1e-2",
          "train.max_steps=100", "train.eval_every=20")


def test_console_script_writes_the_record_of_the_config_compose_builds(tmp_path):
    proc = cdyn_run(tmp_path, "model=gated", "task=mqar", *TINY)
    assert proc.returncode == 0, proc.stderr
    (path,) = (tmp_path / "outputs" / "runs").glob(f"*/{RESULT}")
    record = json.loads(path.read_text())
    cfg = compose("model=gated", "task=mqar", *TINY)
    assert record["config"] == json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert record["config_hash"] == config_hash(cfg.identity())
    assert record["run_dir"] == f"runs/{path.parent.name}" and "path" not in record and "skipped" not in record
    assert (record["status"], record["steps"], record["diverged_at"]) == ("completed", 20, None)
    assert [h["step"] for h in record["history"]] == [10, 20]
    assert record["metrics"]["val_accuracy"] == record["history"][-1]["val_accuracy"]
    assert set(record["metrics"]) == {"test_accuracy", "test_macro_accuracy", "test_last_accuracy", "val_accuracy",
                                      "train_loss", "test_loss", "val_loss"}
    assert record["metrics"]["val_loss"] == record["history"][-1]["val_loss"] > 0
    assert (record["numerics_version"], record["num_threads"], record["forms"]) == (NUMERICS_VERSION, 1, ["chunked"])
    assert record["n_params"] > 0 and set(record["versions"]) >= {"python", "torch", "cdyn_bench", "git_commit", "cpu"}
    assert "test accuracy" in proc.stdout and path.parent.name in proc.stdout


def test_run_returns_what_it_writes(tmp_path):
    result = run(compose(*TINY), tmp_path / "runs")
    assert Path(result.path) == tmp_path / result.run_dir / RESULT and result.run_dir.startswith("runs/")
    assert read_result(result.path) == result


def test_a_lookup_table_is_learned_and_the_run_stops_at_its_target(tmp_path):
    result = run(compose(*LOOKUP, "train.target_accuracy=0.95"), tmp_path / "runs")
    assert result.status == "completed" and result.metrics["test_accuracy"] >= 0.95
    vals = [h["val_accuracy"] for h in result.history]
    # It stops at the first evaluation that reaches the target, before max_steps.
    assert vals[-1] >= 0.95 and all(v < 0.95 for v in vals[:-1]) and result.steps == 20 * len(vals) < 100


def test_a_low_target_stops_at_the_first_evaluation(tmp_path):
    result = run(compose(*TINY, "train.target_accuracy=0.01"), tmp_path / "runs")
    assert result.steps == 10 and [h["step"] for h in result.history] == [10]


def test_the_last_step_is_always_evaluated(tmp_path):
    result = run(compose(*TINY, "train.max_steps=25"), tmp_path / "runs")
    assert result.steps == 25 and [h["step"] for h in result.history] == [10, 20, 25]


def test_target_accuracy_above_one_never_stops_early(tmp_path):
    result = run(compose(*LOOKUP, "train.target_accuracy=2"), tmp_path / "runs")
    assert result.steps == 100 and len(result.history) == 5 and result.metrics["test_accuracy"] >= 0.95


def test_schedule_warms_up_then_follows_a_cosine_to_final_lr():
    cfg = TrainConfig(lr=1e-3, final_lr=1e-4, warmup_steps=10, max_steps=110)
    factor = schedule(cfg)
    assert [factor(s) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factor(10) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert factor(35) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert factor(110) == pytest.approx(0.1) and factor(500) == pytest.approx(0.1)
    values = [factor(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert schedule(TrainConfig(warmup_steps=0, max_steps=50))(0) == 1.0
    assert schedule(TrainConfig(warmup_steps=0, max_steps=50))(50) == 0.0


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    cfg = compose(*TINY)
    first = run(cfg, tmp_path / "a")
    second = run(cfg, tmp_path / "b")
    assert first.metrics == second.metrics and first.history[-1]["train_loss"] == second.history[-1]["train_loss"]
    assert first.config_hash == second.config_hash


def test_finished_run_is_skipped_unless_forced(tmp_path):
    first = run(compose(*TINY), tmp_path / "runs")
    again = run(compose(*TINY), tmp_path / "runs")
    assert again.skipped and again.metrics == first.metrics and again.wall_seconds == first.wall_seconds
    forced = run(compose(*TINY, "force=true"), tmp_path / "runs")
    assert not forced.skipped and forced.run_dir == first.run_dir and forced.wall_seconds != first.wall_seconds
    assert read_result(Path(first.path)).status == "completed"


def test_a_finished_record_of_another_sweep_is_copied_not_retrained(tmp_path):
    donor = run(compose(*TINY, f"out_dir={tmp_path / 'a'}"), tmp_path / "a" / "runs")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cells").mkdir()
    cfg = compose(*TINY, f"out_dir={tmp_path / 'b'}", f"reuse=[{tmp_path / 'a'}]")
    copy = run(cfg, tmp_path / "b" / "cells")
    assert copy.skipped and copy.config_hash == donor.config_hash == config_hash(compose(*TINY).identity())
    assert Path(copy.path) == tmp_path / "b" / copy.run_dir / RESULT and copy.run_dir.startswith("cells/")
    stored = read_result(copy.path)
    # The donor's measurements (wall time included: nothing ran), with this run's place and output keys.
    assert stored.metrics == donor.metrics and stored.history == donor.history
    assert stored.wall_seconds == donor.wall_seconds and stored.config == dataclasses.asdict(cfg)
    assert stored.reused_from == Path(donor.path).parent.as_posix() and not donor.reused_from
    # The record stands without the donor's folder (reuse names where to look, not what the run is).
    shutil.rmtree(tmp_path / "a")
    assert from_record(stored.config).identity() == compose(*TINY).identity()
    # A different seed finds no donor and trains.
    fresh = run(compose(*TINY, "seed=1", f"reuse=[{tmp_path / 'b'}]"), tmp_path / "c" / "runs")
    assert not fresh.skipped and not fresh.reused_from


def test_reuse_retrains_when_forced_or_the_donor_is_of_another_numerics_version(tmp_path):
    donor = run(compose(*TINY), tmp_path / "a" / "runs")
    forced = run(compose(*TINY, "force=true", f"reuse=[{tmp_path / 'a'}]"), tmp_path / "b" / "runs")
    assert not forced.skipped and not forced.reused_from and forced.metrics == donor.metrics
    stale = json.loads(Path(donor.path).read_text())
    Path(donor.path).write_text(json.dumps({**stale, "numerics_version": NUMERICS_VERSION - 1}))
    again = run(compose(*TINY, f"reuse=[{tmp_path / 'a'}]"), tmp_path / "c" / "runs")
    assert not again.skipped and not again.reused_from


def test_reuse_copies_the_weights_a_run_saves_and_skips_a_donor_without_them(tmp_path):
    donor = run(compose(*TINY), tmp_path / "a" / "runs")  # saved no weights
    saving = (*TINY, "train.save_weights=true", f"reuse=[{tmp_path / 'a'}]")
    trained = run(compose(*saving), tmp_path / "b" / "runs")
    assert not trained.skipped and trained.metrics == donor.metrics
    copy = run(compose(*TINY, "train.save_weights=true", f"reuse=[{tmp_path / 'b'}]"), tmp_path / "c" / "runs")
    assert copy.skipped and copy.reused_from
    for name in WEIGHTS.values():
        assert (Path(copy.path).parent / name).read_bytes() == (Path(trained.path).parent / name).read_bytes()


@pytest.mark.parametrize("folder", ["none", "empty"])
def test_reuse_of_a_folder_without_run_folders_is_a_config_error(tmp_path, folder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"reuse=.*cells/ or runs/"):
        compose(*TINY, f"reuse=[{tmp_path / folder}]")


def test_a_different_seed_is_a_different_run(tmp_path):
    a, b = run(compose(*TINY), tmp_path / "runs"), run(compose(*TINY, "seed=1"), tmp_path / "runs")
    assert a.run_dir != b.run_dir and not b.skipped


def test_overflowing_model_ends_diverged(tmp_path):
    cfg = compose(*TINY, "model.mixer.A=fixed", "model.mixer.gamma=2.0", "model.mixer.eta=one",
                  "task.seq_len=256", "task.num_kv_pairs=8")
    result = run(cfg, tmp_path / "runs")
    assert result.status == "diverged" and result.diverged_at == 1 and result.steps == 1 and result.history == []
    assert read_result(result.path).status == "diverged"
    # What explains it: scores grow as gamma^(i-j), past what float32 holds; phi = identity, eta = 1: alpha = score.
    at = read_result(result.path).divergence
    assert at["step"] == 1 and at["loss"] is None
    assert at["log_eig_abs_max"] == pytest.approx(math.log(2.0))
    assert at["score_abs_max"] > 1e38 and at["log_alpha_max"] == pytest.approx(math.log(at["score_abs_max"]))
    assert at["log_eta_max"] == 0.0


def test_every_evaluation_records_the_gradient_norm_and_extremes(tmp_path):
    result = run(compose(*TINY, "train.max_steps=20", "train.eval_every=10"), tmp_path / "runs")
    assert [row["step"] for row in result.history] == [10, 20] and result.divergence is None
    for row in result.history:
        assert 0 < row["grad_norm_max"] <= result.grad_norm_max
        assert all(math.isfinite(row[k]) for k in EXTREMES)
    assert max(row["grad_norm_max"] for row in result.history) == result.grad_norm_max


def test_relu_attention_with_all_negative_rows_trains(tmp_path, monkeypatch):
    # phi = relu, eta = sum: rows whose scores are all negative have coefficients summing to zero.
    zero_rows = []

    def counting(num, den):
        zero_rows.append(int((den == 0).sum()))
        return divide_or_zero(num, den)

    monkeypatch.setattr(normalisers, "divide_or_zero", counting)
    result = run(compose(*TINY, "model=softmax", "model.mixer.phi=relu", "model.pos_emb=none"), tmp_path / "runs")
    assert sum(zero_rows) > 0, "no row summed to zero: the test does not reach the case"
    assert result.status == "completed" and result.diverged_at is None and result.steps == 20
    assert all(math.isfinite(h["train_loss"]) for h in result.history)


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
    (["+model.mixer.gama=1.05"], "model.mixer.gama"),
    (["train.betas=[0.9,1.5]"], "train.betas"),
]


@pytest.mark.parametrize("overrides,key", BAD_INPUTS, ids=[o[0] for o, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_naming_the_key(tmp_path, overrides, key):
    proc = cdyn_run(tmp_path, *overrides)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_rotary_with_odd_head_dim_is_a_config_error():
    with pytest.raises(ConfigError, match="model.pos_emb=rotary"):
        compose("model=softmax", "model.mixer.head_dim=7")


def test_record_names_the_form_that_ran(tmp_path):
    assert run(compose(*TINY, "model=mamba2"), tmp_path / "runs").forms == ["chunked"]


def test_sequence_longer_than_the_position_table_is_a_config_error():
    with pytest.raises(ConfigError, match="task.seq_len=64"):
        compose(*TINY, "model.pos_emb=learned", "model.max_len=32", "task.seq_len=64")
