"""Composing a run's config: Hydra's config tree onto the RunConfig schema, its checks, then the memory
estimate (cdyn_bench.memory), which reads the checked config; `compose` is what `cdyn-run <overrides>` runs."""

from __future__ import annotations

from typing import Any

from cdyn_bench.config import RunConfig, check_bool_overrides, check_known_keys
from cdyn_bench.memory import check_memory


def register_schema() -> None:
    """Register RunConfig as the schema `conf/config.yaml` composes onto (types checked by OmegaConf)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="run_schema", node=RunConfig)


def to_run_config(cfg: Any) -> RunConfig:
    """Convert a composed DictConfig to a checked RunConfig; raises ConfigError on bad values or keys."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    check_known_keys(plain, RunConfig)
    run_cfg = OmegaConf.to_object(cfg)
    assert isinstance(run_cfg, RunConfig)
    seq_len, vocab_size = run_cfg.check()
    if run_cfg.device != "cuda":  # on CUDA the run checks the GPU's free memory itself (cdyn_bench.run)
        check_memory(run_cfg, seq_len, vocab_size)
    return run_cfg


def compose(*overrides: str) -> RunConfig:
    """The checked RunConfig `cdyn-run <overrides>` would run, e.g. compose("model=softmax", "seed=1")."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    check_bool_overrides(list(overrides))
    register_schema()
    with initialize_config_module(config_module="cdyn_bench.conf", version_base="1.3"):
        return to_run_config(hydra_compose(config_name="config", overrides=list(overrides)))


def from_record(config: dict[str, Any]) -> RunConfig:
    """The checked RunConfig of a run record's `config` (keys added since it was written take their defaults)."""
    from omegaconf import OmegaConf

    register_schema()
    # reuse only told the run where to look for a copy; its folders need not exist where the record is read.
    config = {k: v for k, v in config.items() if k != "reuse"}
    return to_run_config(OmegaConf.merge(OmegaConf.structured(RunConfig), config))
