"""`cdyn-run --help` is generated from the schemas, choice tables and conf/; group selections are checked."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from importlib import resources

import pytest

from cdyn_bench.config import RunConfig
from cdyn_bench.compose import compose
from cdyn_bench.help import CHOICES, KEY_WIDTH, check_groups, help_text, show
from cdyn_bench.registry import ConfigError
from cdyn_bench.task_config import TASK_CONFIGS, TaskConfig

CONF = resources.files("cdyn_bench.conf")
BOGUS = "zz_not_a_choice"


def stems(*group: str) -> list[str]:
    return [p.name[:-5] for p in CONF.joinpath(*group).iterdir() if p.name.endswith(".yaml")]


def listed(text: str) -> set[str]:
    """The names at the start of the help's option and key rows."""
    return {line.split()[0] for line in text.splitlines() if re.match(r"  \S", line)}


def key_block(text: str, key: str) -> str:
    """A key's row with its continuation lines (allowed values, default, note)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {key} "))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith(" " * (KEY_WIDTH + 2)):
            break
        block.append(line)
    return " ".join(" ".join(block).split())


@pytest.fixture(scope="module")
def text() -> str:
    return help_text()


@pytest.mark.parametrize("group", ["model", "task", "train", "experiment", "hydra/launcher"])
def test_help_lists_every_option_of_a_group(text, group):
    assert set(stems(*group.split("/"))) <= listed(text)


def test_help_lists_every_task_with_its_keys(text):
    for name, schema in TASK_CONFIGS.items():
        block = key_block(text, name)
        assert all(f" {f.name}=" in block for f in dataclasses.fields(schema) if f.name != "name"), name


def test_help_names_no_mad_setting_file(text):
    names = stems("mad_setting", "cpu") + stems("mad_setting", "full")
    assert len(names) == 132
    assert not [n for n in names if n in text]
    assert "conf/mad_setting: MAD's settings" in text and "+experiment=mad_protocol" in text


def test_help_describes_experiments_from_their_first_comment(text):
    assert "Does a grid run, resume and report end to end?" in key_block(text, "smoke")
    assert "@package" not in text


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_every_choice_value_appears_for_its_key(text, key):
    words = set(re.split(r"[\s|()]+", key_block(text, key)))
    assert set(CHOICES[key]) <= words


def test_defaults_shown_are_those_of_a_plain_run(text):
    cfg = compose()
    for key in (k for k in listed(text) if "." in k and not k.startswith("task.")):
        assert f"(default {show(cfg.lookup(key))})" in key_block(text, key), key


def test_help_carries_the_notes_and_hydra_help(text):
    assert "zero coefficients" in key_block(text, "model.mixer.eta")
    assert "diverged" in key_block(text, "model.mixer.eta")
    assert "train.num_threads=1" in key_block(text, "train.num_threads")
    assert "--hydra-help" in text


def str_keys(node, prefix=""):
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            yield from str_keys(value, f"{prefix}{f.name}.")
        elif f.type == "str":
            yield f"{prefix}{f.name}"


def with_value(key: str, value: str) -> RunConfig:
    cfg = RunConfig()
    if key.startswith("task."):
        cfg.task = {"name": "mqar", key.split(".", 1)[1]: value}
        return cfg
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = getattr(node, part)
    setattr(node, leaf, value)
    return cfg


def refusal(key: str) -> str:
    """check_choice's message for an unknown value of `key`, or '' if the key takes free text."""
    try:
        with_value(key, BOGUS).check()
    except ConfigError as err:
        return str(err) if str(err).startswith(f"{key}={BOGUS!r} is not allowed") else ""
    return ""


def test_every_str_field_with_a_choice_table_is_mapped():
    keys = list(str_keys(RunConfig())) + [f"task.{f.name}" for f in dataclasses.fields(TaskConfig)]
    checked = {key for key in keys if refusal(key)}
    assert checked == set(CHOICES)


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_each_mapped_table_is_the_one_the_check_uses(key):
    assert refusal(key).split("Allowed: ")[1].split(", ") == list(CHOICES[key])


@pytest.mark.parametrize("overrides, message", [
    (["model=gatd"], "model=gatd: unknown preset. Did you mean gated? Available: deltanet, gated,"),
    (["-m", "model=gated,sofmax"], "model=sofmax: unknown preset. Did you mean softmax?"),
    (["task=mqr"], "task=mqr: unknown task. Did you mean mqar?"),
    (["++task=mqr"], "++task=mqr: unknown task. Did you mean mqar?"),
    (["train=x"], "train=x: unknown training config. Available: default"),
    (["+experiment=smoak"], "+experiment=smoak: unknown experiment. Did you mean smoke?"),
    (["hydra/launcher=paralel"], "hydra/launcher=paralel: unknown launcher. Did you mean parallel?"),
    (["+mad_setting/cpu=icr-baselin"], "+mad_setting/cpu=icr-baselin: unknown MAD setting. Did you mean icr-baseline?"),
])
def test_check_groups_refuses_an_unknown_option_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        check_groups(overrides)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("overrides", [
    ["model=gated", "task=mqar", "train=default"],
    ["-m", "model=gated,softmax", "task=mqar,icr", "seed=0,1"],
    ["+experiment=smoke", "hydra/launcher=parallel"],
    ["hydra/launcher=basic", "hydra/launcher=joblib", "hydra/job_logging=disabled"],
    ["+mad_setting/cpu=glob(*)", "model=choice(gated,softmax)"],
    ["model.d_model=3", "model.mixer.A=gatd", "hydra.launcher.n_jobs=2", "~model", "model=null", "--cfg", "job"],
])
def test_check_groups_passes_valid_selections_and_other_keys(overrides):
    check_groups(overrides)


def test_help_imports_no_torch():
    code = "import sys; from cdyn_bench.help import help_text; help_text(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def test_cdyn_run_help_and_group_typos_from_the_console_script(tmp_path):
    from helpers import cdyn_run

    proc = cdyn_run(tmp_path, "--help")
    assert proc.returncode == 0 and "model.mixer.phi" in proc.stdout and "gated_deltanet" in proc.stdout
    assert "noisy_icr-frac_noise-0.6" not in proc.stdout
    proc = cdyn_run(tmp_path, "model=gatd")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        proc.stderr.strip()] and "Did you mean gated?" in proc.stderr and "search path" not in proc.stderr.lower()
