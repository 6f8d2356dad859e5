"""Helpers shared by the tests: composing configs, tiny runs, the console script's environment, preset
names, the relative-RMS comparison and hand-made records."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import torch
import yaml

from cdyn_bench.compose import compose

__all__ = ["BIN", "PRESETS", "TINY", "assert_close", "cdyn_run", "cli_env", "compose", "compose_hydra", "conf_file",
           "group_names", "run_fwd_bwd", "state_forms", "sweep_jobs", "write_record"]

BIN = Path(sys.executable).parent

# A run of a few seconds on one thread: one block of width 16, MQAR of length 16, 20 steps.
TINY = (
    "model.d_model=16", "model.n_layers=1", "task.seq_len=16", "task.num_kv_pairs=2", "task.vocab_size=32",
    "task.num_val=32", "task.num_test=32", "train.batch_size=8", "train.max_steps=20", "train.eval_every=10",
    "train.warmup_steps=2", "train.num_threads=1", "progress=false", "wandb=disabled",
)


def group_names(group: str) -> list[str]:
    """The option names of a config group: the .yaml file names under cdyn_bench.conf/<group>."""
    folder = resources.files("cdyn_bench.conf").joinpath(*group.split("/"))
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


PRESETS = group_names("model")


def state_forms(mixer_cfg) -> list[str]:
    """The forms that can compute a linear-readout mixer: every one, the scan only for A without a Householder part."""
    from cdyn_bench.mixer.evolutions import evolution

    return ["quadratic", "recurrent", "chunked"] + ([] if evolution(mixer_cfg.A).householder else ["scan"])


def compose_hydra(*overrides: str):
    """The composed DictConfig with its `hydra` section (sweeper params, mode, launcher), unchecked."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from cdyn_bench.compose import register_schema

    register_schema()
    with initialize_config_module(config_module="cdyn_bench.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def sweep_jobs(*overrides: str) -> list[list[str]]:
    """Every job's overrides, as Hydra's basic sweeper expands the sweeper params and `overrides` (which may
    sweep too: 'model.n_layers=1,2')."""
    from hydra import initialize_config_module
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = compose_hydra(*(o if o.partition("=")[2].startswith("[") else o.split(",")[0] for o in overrides))
    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.params or {}).items()]
    with initialize_config_module(config_module="cdyn_bench.conf", version_base="1.3"):
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
        (jobs,) = BasicSweeper.split_arguments(parser.parse_overrides(params + list(overrides)), None)
    return jobs


def cli_env(home: Path, cache: str = "off") -> dict[str, str]:
    """Environment of a console-script test: W&B off, no task cache (or one under tmp), one thread, HOME in tmp."""
    env = {"WANDB_MODE": "disabled", "CDYN_BENCH_CACHE": cache, "PATH": str(BIN), "HOME": str(home),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return env | ({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {})


def cdyn_run(cwd: Path, *overrides: str, timeout: int = 300, **kwargs) -> subprocess.CompletedProcess:
    """`cdyn-run <overrides>` in `cwd` with cli_env(cwd)."""
    return subprocess.run([str(BIN / "cdyn-run"), *overrides], cwd=cwd, env=cli_env(cwd), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def assert_close(name: str, ref, out, ratio: float) -> None:
    """Relative RMS error ||out - ref|| / ||ref|| at most `ratio` (fla's `assert_close`), shapes equal.

    A reference that is exactly zero must be matched exactly; a nan or inf in `out` fails.
    """
    assert ref.shape == out.shape, f"{name}: shape {tuple(out.shape)} != reference {tuple(ref.shape)}"
    ref, out = ref.detach().double(), out.detach().double()
    err = (ref - out).pow(2).mean().sqrt().item()
    base = ref.pow(2).mean().sqrt().item()
    assert err <= ratio * base or err == base == 0.0, (
        f"{name}: relative RMS error {err / base if base else err:.2e} > {ratio:.0e}")


def run_fwd_bwd(fn, inputs: dict, module=None):
    """fn(*inputs.values()) and the gradients of every input (and of every parameter of `module`, by name)
    under a fixed random cotangent: the one harness of the equivalence tests."""
    inputs = {name: x.detach().clone().requires_grad_() for name, x in inputs.items()}
    y = fn(*inputs.values())
    cotangent = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (y * cotangent.to(y.dtype)).sum().backward()
    grads = {name: x.grad for name, x in inputs.items()}
    for name, p in (module.named_parameters() if module is not None else ()):
        grads[name] = torch.zeros_like(p) if p.grad is None else p.grad
    return y, grads


def write_record(sweep_dir: Path, name: str, status: str = "completed", **fields):
    """Write the record of a run that never trained to <sweep_dir>/cells/<name>; returns its RunResult."""
    from cdyn_bench import NUMERICS_VERSION
    from cdyn_bench.record import RunResult, config_hash, write_result

    config = {"model": {"name": name}, "task": {"name": "mqar"}, "seed": 0}
    result = RunResult(config=config, config_hash=config_hash(config), status=status, seed=0, steps=20,
                       metrics={"test_accuracy": 0.5, "val_accuracy": 0.5}, numerics_version=NUMERICS_VERSION,
                       run_dir=f"cells/{name}", **fields)
    write_result(result, Path(sweep_dir) / "cells" / name)
    return result


def conf_file(group: str, name: str) -> dict:
    """The values of conf/<group>/<name>.yaml as written."""
    return yaml.safe_load(resources.files("cdyn_bench.conf").joinpath(group, f"{name}.yaml").read_text()) or {}
