"""Generated bad inputs: any key of the config schema with a value from a family of bad ones is either a
valid config or one line that names the key, never a traceback.

Deterministic in CI (derandomized, `BAD_INPUT_EXAMPLES` examples, 60 by default); the long run (20,583 examples
over the three generated tests; the README gives its time):
`BAD_INPUT_EXAMPLES=13000 python -m pytest tests/test_bad_inputs.py -p no:cacheprovider`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdyn_bench.usage import USAGE_ERRORS, one_line
from cdyn_bench.config import RunConfig
from helpers import BIN, TINY, cli_env, compose

pytestmark = pytest.mark.filterwarnings("ignore")
EXAMPLES = int(os.environ.get("BAD_INPUT_EXAMPLES", "60"))
NESTED = {"model": "ModelConfig", "train": "TrainConfig", "mixer": "MixerConfig", "search": "SearchRule"}


def schema_keys(schema: type = RunConfig, prefix: str = "") -> list[str]:
    """Every leaf key of the run schema, dotted (task keys are typed per task: the common ones are listed)."""
    from cdyn_bench.config import ModelConfig, TrainConfig
    from cdyn_bench.mixer.config import MixerConfig
    from cdyn_bench.search import SearchRule

    types = {"ModelConfig": ModelConfig, "TrainConfig": TrainConfig, "MixerConfig": MixerConfig, "SearchRule": SearchRule}
    keys = []
    for f in dataclasses.fields(schema):
        if f.type in types:
            keys += schema_keys(types[f.type], f"{prefix}{f.name}.")
        elif f.name != "task":
            keys.append(prefix + f.name)
    return keys


KEYS = schema_keys() + ["task.seq_len", "task.vocab_size", "task.num_kv_pairs", "task.num_val", "task.num_train"]
BAD_VALUES = st.one_of(
    st.sampled_from(["abc", "-1", "0", "-0.5", "nan", "inf", "-inf", "1e30", "99999999999999999999999",
                     "[1,2]", "{a:1}", "null", "true", "''", "exṕ", "'exṕ'", "x" * 5000, "1.5", "glaa"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12),
)


def check_usage_error(overrides: list[str], key: str) -> None:
    """compose() either accepts the overrides or raises a usage error whose one line names `key`."""
    try:
        compose(*TINY, *overrides)
    except USAGE_ERRORS as err:
        line = one_line(err)
        assert "\n" not in line and len(line) <= 600, line
        assert key.rsplit(".", 1)[-1] in line or "override" in line, line


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(key=st.sampled_from(KEYS), value=BAD_VALUES, plus=st.booleans())
def test_any_key_with_a_bad_value_is_a_config_or_one_line_naming_the_key(key, value, plus):
    check_usage_error([f"{'+' if plus else ''}{key}={value}"], key)


@settings(max_examples=max(10, EXAMPLES // 4), deadline=None, derandomize=True)
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10),
       group=st.sampled_from(["", "model.", "train.", "model.mixer.", "task.", "search."]), plus=st.booleans())
def test_an_unknown_key_is_one_line_naming_it(name, group, plus):
    key = group + name
    if key in KEYS or (group == "task." and name in ("name", "seq_len", "vocab_size", "num_kv_pairs", "num_val",
                                                      "num_train", "num_test", "power_a", "frac_noise")):
        return
    check_usage_error([f"{'+' if plus else ''}{key}=1"], name)


@pytest.mark.parametrize("argv", [
    ["seed=18446744073709551616"], ["force=2"], ["model.mixer.phi=exṕ"], ["model.mixer.phi=" + "x" * 5000],
    ["-m", "seed=0,1", "train.lr=1e-3,-1"], ["out_dir=" + "a" * 300], ["+model.mixer.gama=1.05"],
], ids=["seed-2^64", "force-2", "non-ascii", "long-value", "sweep-one-bad-cell", "long-path", "unknown-key"])
def test_the_cli_exits_2_with_one_line_and_writes_nothing(argv, tmp_path):
    out = tmp_path / "out"
    flags, overrides = [a for a in argv if a.startswith("-")], [a for a in argv if not a.startswith("-")]
    where = [] if overrides[0].startswith("out_dir") else [f"out_dir={out}"]
    proc = subprocess.run([str(BIN / "cdyn-run"), *flags, *TINY, *overrides, *where], capture_output=True, text=True,
                          cwd=tmp_path, env=cli_env(tmp_path), timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines[0]) <= 400 and not out.exists()


@pytest.mark.parametrize("argv", [["--out", "x" * 3000], ["y" * 3000], ["--out", "README.md"]],
                         ids=["out-name-too-long", "dir-name-too-long", "out-a-file"])
def test_cdyn_report_refuses_an_unusable_path_in_one_short_line(argv, tmp_path):
    (tmp_path / "README.md").write_text("a file")
    (tmp_path / "records").mkdir()
    proc = subprocess.run([str(BIN / "cdyn-report"), *(["records"] if argv[0] == "--out" else []), *argv],
                          capture_output=True, text=True, cwd=tmp_path, env=cli_env(tmp_path), timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines[0]) <= 300 and ("not a usable path" in lines[0] or "a file, not a folder" in lines[0])


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from cdyn_bench.record import RunResult, config_hash, run_dir, write_result

    root = tmp_path_factory.mktemp("records")
    for lr in (1e-3, 3e-3):
        for seed in range(2):
            config = {"model": {"name": "gated", "d_model": 16}, "task": {"name": "mqar"},
                      "train": {"lr": lr, "max_steps": 20}, "seed": seed}
            digest = config_hash(config)
            directory = run_dir(root / "cells", config, digest)
            write_result(RunResult(config=config, config_hash=digest, status="completed", seed=seed, steps=20,
                                   history=[{"step": 20, "train_loss": 1.0, "val_accuracy": 0.5}],
                                   metrics={"val_accuracy": 0.5, "test_accuracy": 0.5},
                                   run_dir=directory.relative_to(root).as_posix()), directory)
    return root


OPTION_VALUES = st.one_of(st.sampled_from(["train.lr", "seed", "model.name", "nokey", "x" * 3000, "a=b", "=", "",
                                           "train.lr=abc", "model.name=", "train.lr=1e-3,", "ṕ=1"]),
                          st.text(min_size=0, max_size=8))


@settings(max_examples=max(10, EXAMPLES // 3), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--where", "--x", "--compare", "--series", "--heat", "--out"]), value=OPTION_VALUES)
def test_cdyn_report_with_a_bad_option_exits_with_one_line(records, option, value, capsys, tmp_path_factory):
    from cdyn_bench.cli import report_main

    out = tmp_path_factory.mktemp("report")
    values = [value, value] if option == "--heat" else [value]
    argv = [str(records), *(["--out", str(out)] if option != "--out" else []), option, *values]
    here = os.getcwd()
    os.chdir(out)  # a relative --out lands in the example's own folder
    try:
        report_main(argv)
    except SystemExit as exit_:
        assert exit_.code in (1, 2)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("search:")]
        assert len(err) == 1 and "Traceback" not in err[0], err
    else:
        capsys.readouterr()
    finally:
        os.chdir(here)
