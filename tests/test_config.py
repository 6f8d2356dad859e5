"""Every preset x task composes into a checked RunConfig; config files match the registries."""

from __future__ import annotations

from importlib import resources

import pytest
from conftest import compose_run

from cdyn_bench.data import TaskConfig
from cdyn_bench.mixer.components import EVOLUTIONS
from cdyn_bench.tasks import TASKS


def group_names(group: str) -> list[str]:
    folder = resources.files("cdyn_bench.conf") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


MODELS, TASK_FILES = group_names("model"), group_names("task")


@pytest.mark.parametrize("task", TASK_FILES)
@pytest.mark.parametrize("model", MODELS)
def test_every_preset_and_task_composes(model, task):
    cfg = compose_run(f"model={model}", f"task={task}")
    assert cfg.model.name == model
    assert TaskConfig.from_dict(cfg.task).name == task
    assert cfg.model.mixer.A in EVOLUTIONS


def test_task_files_are_registry_keys():
    assert set(TASK_FILES) <= set(TASKS)
    for task in TASK_FILES:
        assert compose_run(f"task={task}").task["name"] == task


def test_overrides_reach_the_typed_config():
    cfg = compose_run("train.lr=0.01", "model.mixer.phi=relu", "task.seq_len=32", "seed=3")
    assert (cfg.train.lr, cfg.model.mixer.phi, cfg.task["seq_len"], cfg.seed) == (0.01, "relu", 32, 3)
