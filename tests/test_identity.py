"""Every key counts and nothing runs that was not meant: unknown keys, inactive knobs, typed task
configs, defaults in one place, checks before the first cell, refused sizes and paths, versions."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cdyn_bench import NUMERICS_VERSION, record
from cdyn_bench.compose import compose
from cdyn_bench.config import ModelConfig, TrainConfig
from cdyn_bench.registry import ConfigError
from helpers import TINY, cdyn_run


def digest(*overrides: str) -> str:
    return record.config_hash(compose(*overrides).identity())


@pytest.mark.parametrize("override, message", [
    ("+model.mixer.gama=1.05", r"model\.mixer\.gama: unknown key\. Did you mean gamma\?"),
    ("+train.foo=1", r"train\.foo: unknown key"),
    ("+foo=2", r"foo: unknown key"),
    ("+task.powr_a=1", r"task\.powr_a: unknown key for task mqar\. Did you mean power_a\?"),
])
def test_unknown_keys_are_refused_with_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        compose(override)


@pytest.mark.parametrize("preset, knob, value", [
    ("softmax", "gamma", 1.05),             # A is not fixed
    ("retnet", "gamma", 0.5),               # per-head RetNet gammas replace gamma
    ("mlstm", "gate_rank", 4),              # the forget gate has no low-rank projection
    ("mamba2", "gate_temperature", 2.0),    # GLA's temperature is a sigmoid-gate knob
    ("mamba2", "gate_min", 0.5),
    ("gated", "dt_min", 0.01),              # Mamba's Delta range, with a sigmoid gate
    ("gated", "eta_f", "softplus"),         # eta is not learned
    ("softmax", "chunk_size", 16),          # quadratic form
    ("s6", "rate_max", 8.0),                # s4d_real rates
])
def test_inactive_knobs_are_not_part_of_the_identity(preset, knob, value):
    assert digest(f"model={preset}", f"model.mixer.{knob}={value}") == digest(f"model={preset}")


@pytest.mark.parametrize("overrides", [
    ("model.mixer.A=fixed", "model.mixer.gamma=1.05"),
    ("model=gla", "model.mixer.chunk_size=8"),
    ("model=norm_attn", "model.mixer.eta_f=softplus"),
    ("model=mamba2", "model.mixer.dt_min=0.01"),
    ("train.weight_decay_on=all",),
])
def test_active_knobs_change_the_identity(overrides):
    base = [o for o in overrides if o.startswith("model=")]
    assert digest(*overrides) != digest(*base)


def test_model_and_train_keys_without_effect():
    assert digest("model.mlp=false", "model.mlp_ratio=2") == digest("model.mlp=false")
    assert digest("model.max_len=128") == digest()
    assert digest("model.pos_emb=learned", "model.max_len=128") != digest("model.pos_emb=learned")
    assert digest("train.weight_decay=0", "train.weight_decay_on=all") == digest("train.weight_decay=0")
    assert digest("train.num_threads=1", "train.compile=true", "out_dir=elsewhere", "wandb=disabled") == digest()


def test_task_values_are_typed_with_the_generators_defaults():
    assert digest("task.power_a=1") == digest("task.power_a=1.0")
    task = compose("task=icr").task
    assert dataclasses.asdict(task) == {"name": "icr", "num_train": 12800, "num_val": 1280, "num_test": 1280,
                                        "loss_on": "all", "readout": "lm", "vocab_size": 16, "seq_len": 128}
    assert compose("task.power_a=1").task.power_a == 1.0 and isinstance(compose("task.power_a=1").task.power_a, float)
    with pytest.raises(ConfigError, match=r"task\.seq_len=64\.0: must be of type int"):
        compose("task.seq_len=64.0")
    with pytest.raises(ConfigError, match=r"task\.random_non_queries=1: must be of type bool"):
        compose("task.random_non_queries=1")


def test_memorisation_map_follows_the_run_seed():
    assert compose("task=memorization", "seed=3").task.map_seed == 3


def test_defaults_live_in_the_schema():
    assert compose().train == TrainConfig()
    assert TrainConfig().target_accuracy == 0.995
    assert ModelConfig().name == "custom"
    assert compose() == compose("model=gated")
    assert compose().model.name == "gated" and compose().model != ModelConfig()


@pytest.mark.parametrize("override, message", [
    ("model.mixer.gamma=nan", r"model\.mixer\.gamma=nan: must be a finite number"),
    ("train.lr=inf", r"train\.lr=inf: must be a finite number"),
    ("task.power_a=nan", r"task\.power_a=nan: must be a finite number"),
    ("train.betas=[0.9,nan]", r"train\.betas=nan: must be a finite number"),
])
def test_non_finite_floats_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        compose("model.mixer.A=fixed", override)


@pytest.mark.parametrize("override, message", [
    ("task.seq_len=100000", r"task\.seq_len=100000: the run needs about .* [GT]B .* available\. Lower task\.seq_len"),
    ("model.d_model=100000", r"model\.d_model=100000: the run needs about .* available\. Lower model\.d_model"),
    ("model.mlp_ratio=99999999999999999999999", r"model\.mlp_ratio=\d+: the run needs about [\d.]+e\+\d+ TB .* Lower model\.mlp_ratio$"),
    ("model.mixer.head_dim=100000", r"model\.mixer\.head_dim=100000: .* Lower model\.mixer\.head_dim$"),
    ("model.mixer.value_dim=100000", r"model\.mixer\.value_dim=100000: .* Lower model\.mixer\.value_dim$"),
    ("model.mixer.conv_size=10000000000", r"model\.mixer\.conv_size=10000000000: .* Lower model\.mixer\.conv_size$"),
    ("model.max_len=10000000000 model.pos_emb=learned", r"model\.max_len=10000000000: .* Lower model\.max_len$"),
    ("task.num_val=10000000000", r"task\.num_val=10000000000: .* Lower task\.num_val$"),
    ("task.num_test=10000000000", r"task\.num_test=10000000000: .* Lower task\.num_test$"),
    ("task.vocab_size=99999999999999999999999", r"task\.vocab_size=\d+: too large; must be below 2\^62$"),
    ("out_dir=", r"out_dir='': must name a folder"),
    ("sweep_name=../../x", r"sweep_name='\.\./\.\./x': must be a relative name"),
    ("sweep_name=/abs", r"sweep_name='/abs'"),
])
def test_impossible_sizes_and_paths_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        compose(*override.split())


def test_the_default_sizes_fit():
    from cdyn_bench.memory import estimate

    cfg = compose()
    assert sum(p.bytes for p in estimate(cfg, 64, 256)) < 2e9


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match=r"device=cuda: CUDA is not available"):
        compose("device=cuda")


def test_a_bad_value_in_the_second_cell_stops_the_sweep_before_the_first_trains(tmp_path):
    proc = cdyn_run(tmp_path, "-m", *TINY, "task.num_kv_pairs=2,100", f"out_dir={tmp_path}")
    assert proc.returncode == 2, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert line.startswith("cdyn-run: error: task.num_kv_pairs=100")
    assert not list(tmp_path.rglob(record.RESULT))


def test_a_position_table_too_short_for_the_second_cell_stops_the_sweep(tmp_path):
    proc = cdyn_run(tmp_path, "-m", *TINY, "model.pos_emb=learned", "model.max_len=16,8", f"out_dir={tmp_path}")
    assert proc.returncode == 2 and "model.max_len=8" in proc.stderr
    assert not list(tmp_path.rglob(record.RESULT))


def test_sweeping_an_inactive_knob_trains_one_cell(tmp_path):
    proc = cdyn_run(tmp_path, "-m", *TINY, "model=softmax", "model.mixer.gamma=1.0,1.05", f"out_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "sweeps" / "sweep" / "manifest.json").read_text())
    assert len(manifest["planned"]) == 2 and len({c["run_dir"] for c in manifest["planned"]}) == 1
    assert len(list(tmp_path.rglob(record.RESULT))) == 1


@pytest.mark.parametrize("multirun", [False, True])
def test_an_unwritable_out_dir_fails_before_training(tmp_path, multirun):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = cdyn_run(tmp_path, *(["-m"] if multirun else []), *TINY, f"out_dir={blocker}/records")
    assert proc.returncode == 2, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert line.startswith("cdyn-run: error: out_dir: cannot write run records") and "step" not in proc.stdout


def tiny_run(tmp_path: Path, *overrides: str) -> record.RunResult:
    from cdyn_bench.run import run

    return run(compose(*TINY, *overrides), tmp_path / "runs")


def test_a_record_of_another_numerics_version_is_rerun_and_overwritten(tmp_path):
    first = tiny_run(tmp_path)
    assert first.numerics_version == NUMERICS_VERSION and tiny_run(tmp_path).skipped
    path = Path(first.path)
    path.write_text(json.dumps({**json.loads(path.read_text()), "numerics_version": NUMERICS_VERSION - 1}))
    again = tiny_run(tmp_path)
    assert not again.skipped and json.loads(path.read_text())["numerics_version"] == NUMERICS_VERSION


def test_a_form_version_bump_reruns_only_the_records_that_ran_that_form(tmp_path, monkeypatch):
    import cdyn_bench
    from cdyn_bench.table import load, mixed_versions

    chunked, quadratic = tiny_run(tmp_path, "model=gated"), tiny_run(tmp_path, "model=softmax")
    assert (chunked.forms, chunked.form_versions, quadratic.forms) == (["chunked"], {"chunked": 1}, ["quadratic"])
    # A record written before form versions were recorded ran every form at version 1: still current.
    path = Path(quadratic.path)
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "form_versions"}))
    assert tiny_run(tmp_path, "model=softmax").skipped
    monkeypatch.setitem(cdyn_bench.FORM_VERSIONS, "chunked", 2)
    again = tiny_run(tmp_path, "model=gated")
    assert not again.skipped and json.loads(Path(chunked.path).read_text())["form_versions"] == {"chunked": 2}
    assert tiny_run(tmp_path, "model=softmax").skipped
    tiny_run(tmp_path, "model=gated", "seed=1")
    monkeypatch.setitem(cdyn_bench.FORM_VERSIONS, "chunked", 1)
    tiny_run(tmp_path, "model=gated", "seed=2")
    (line,) = mixed_versions(load([tmp_path / "runs"])[0])
    assert line.startswith(f"the records mix numerics versions {NUMERICS_VERSION}, {NUMERICS_VERSION} chunked.2")


def test_the_record_names_the_code_and_the_threads(tmp_path, monkeypatch):
    import cdyn_bench.run

    monkeypatch.setattr(cdyn_bench.run, "available_cores", lambda: 1)
    result = tiny_run(tmp_path, "train.num_threads=0")
    assert result.num_threads == 1 and torch.get_num_threads() == 1
    assert 0 < result.eval_seconds < result.train_seconds  # two validation passes inside the loop
    assert {"cdyn_bench", "git_commit", "git_dirty", "torch"} <= set(result.versions)
    assert result.run_dir == f"runs/{Path(result.path).parent.name}"
    assert json.loads(Path(result.path).read_text())["config"]["task"]["power_a"] == 0.01


def test_config_checks_import_no_torch():
    code = ("import sys\nfrom cdyn_bench.compose import compose\n"
            "try:\n    compose('model.mixer.phi=tanh')\nexcept Exception as e:\n    print(type(e).__name__)\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["ConfigError", "False"], proc.stderr



@pytest.mark.slow
def test_a_compiled_run_trains_to_the_same_numbers_as_an_eager_one(tmp_path):
    eager = tiny_run(tmp_path / "eager")
    compiled = tiny_run(tmp_path / "compiled", "train.compile=true")
    assert compiled.status == eager.status == "completed" and compiled.steps == eager.steps
    assert compiled.metrics["train_loss"] == pytest.approx(eager.metrics["train_loss"], rel=1e-3)


def test_a_generator_error_that_is_not_its_own_refusal_names_the_task_and_its_values(monkeypatch):
    """numpy's own ValueError (not the generator's "key=value: why") is not passed off as a key of its own."""
    from cdyn_bench import task_config

    def fails(*args, **kwargs):
        raise ValueError("high is out of bounds for int64")

    monkeypatch.setitem(task_config.TASKS, "mqar", fails)
    with pytest.raises(ConfigError, match=r"^task=mqar: its generator refused the values task\.vocab_size=\d+.* "
                                          r"\(high is out of bounds for int64\)$"):
        compose("task=mqar")
