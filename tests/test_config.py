"""Config groups equal the registries; preset, task and experiment files compose into the typed config.

A run's identity (inactive knobs, output-only keys, typed task values) is tested in test_identity.py."""

from __future__ import annotations

from functools import cache

import pytest
import yaml
from helpers import PRESETS, compose, conf_file, group_names, sweep_jobs

from cdyn_bench import choices
from cdyn_bench.mixer.components import ETA_FS, FEATURE_MAPS, PHIS
from cdyn_bench.mixer.forms import FORMS
from cdyn_bench.mixer.normalisers import ETAS
from cdyn_bench.model import NORMS
from cdyn_bench.registry import ConfigError
from cdyn_bench.task_config import TASK_CONFIGS
from cdyn_bench.tasks import TASKS

TASK_FILES, EXPERIMENTS = group_names("task"), group_names("experiment")


@cache
def composed(*overrides: str):
    return compose(*overrides)


# Implementation tables (name -> callable) and the torch-free tuples that the config checks and --help read.
IMPLEMENTATIONS = {
    "psi": (FEATURE_MAPS, choices.FEATURE_MAPS),
    "phi": (PHIS, choices.PHIS),
    "eta_f": (ETA_FS, choices.ETA_FS),
    "block_norm": (NORMS, choices.BLOCK_NORMS),
    "form": ({"auto": None, **FORMS}, choices.FORM_NAMES),
    "eta": (ETAS, choices.NORMALISERS),
}


@pytest.mark.parametrize("kind", IMPLEMENTATIONS)
def test_implementations_are_keyed_by_the_allowed_names(kind):
    table, allowed = IMPLEMENTATIONS[kind]
    assert tuple(table) == tuple(allowed)


def test_task_files_equal_the_task_registry():
    assert TASK_FILES == sorted(TASKS) == sorted(TASK_CONFIGS)


@pytest.mark.parametrize("task", TASK_FILES)
def test_task_file_values_reach_the_typed_task_config(task):
    cfg = composed(f"task={task}").task
    assert type(cfg) is TASK_CONFIGS[task] and cfg.name == task
    values = {k: v for k, v in conf_file("task", task).items() if not str(v).startswith("${")}
    assert {k: getattr(cfg, k) for k in values} == values


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_file_values_reach_the_model_config(preset):
    raw = conf_file("model", preset)
    model = composed(f"model={preset}").model
    assert raw["name"] == preset == model.name
    assert {k: getattr(model.mixer, k) for k in raw["mixer"]} == raw["mixer"]
    assert {k: getattr(model, k) for k in raw if k != "mixer"} == {k: v for k, v in raw.items() if k != "mixer"}


@pytest.mark.parametrize("task", TASK_FILES)
@pytest.mark.parametrize("model", PRESETS)
def test_model_and_task_compose_independently(model, task):
    cfg = compose(f"model={model}", f"task={task}")
    assert cfg.model == composed(f"model={model}").model
    assert cfg.task == composed(f"task={task}").task


def test_overrides_reach_the_typed_config():
    cfg = compose("train.lr=0.01", "model.mixer.phi=relu", "task.seq_len=32", "seed=3", "train.betas=[0.8,0.9]")
    assert (cfg.train.lr, cfg.model.mixer.phi, cfg.task.seq_len, cfg.seed) == (0.01, "relu", 32, 3)
    assert cfg.train.betas == [0.8, 0.9] and cfg.task.params["seq_len"] == 32


@pytest.mark.parametrize("override, message", [
    ("train.betas=[0.9]", r"train\.betas=\[0\.9\]: need two values in \[0, 1\)"),
    ("train.betas=[0.9,1.0]", r"train\.betas=\[0\.9, 1\.0\]"),
    ("train.final_lr=1.0", r"train\.final_lr=1\.0: must be <= train\.lr"),
    ("train.final_lr=-0.1", r"train\.final_lr=-0\.1: must be >= 0"),
    ("train.weight_decay_on=some", r"train\.weight_decay_on='some'.*Allowed: matrices, all"),
    ("model.mixer.out_norm=rms_widht", r"model\.mixer\.out_norm='rms_widht'.*Did you mean rms_width"),
])
def test_bad_train_and_mixer_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        compose(override)
    assert "\n" not in str(err.value)


def flat(tree: dict, prefix: str = "") -> dict:
    """{'a.b': 1} from {'a': {'b': 1}}."""
    out = {}
    for key, value in tree.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def first_and_last_cells(experiment: str) -> list[list[str]]:
    jobs = sweep_jobs(f"+experiment={experiment}")
    return [jobs[0], jobs[-1]] if jobs else [[f"+experiment={experiment}"]]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_and_its_sweep_cells_compose(experiment):
    raw = conf_file("experiment", experiment)
    assert composed(f"+experiment={experiment}").sweep_name == raw["sweep_name"] == experiment
    for job in first_and_last_cells(experiment):
        cfg = compose(*job)
        for override in job:
            key, _, value = override.lstrip("+").partition("=")
            if key == "model":
                assert cfg.model.name == value
            elif key == "task":
                assert cfg.task.name == value
            elif key.startswith("mad_setting/"):
                assert cfg.task.name == value.split("-")[0]
            elif "." not in key and key not in ("experiment", "seed") and group_names(key):  # +transition=..., a swept group
                values = {k: v for k, v in conf_file(key, value).items() if k != "defaults"}
                for dotted, set_to in flat(values).items():
                    assert cfg.lookup(dotted) == set_to, (override, dotted)
            elif key != "experiment":
                assert cfg.lookup(key) == yaml.safe_load(value), override
