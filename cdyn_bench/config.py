"""Typed run configuration: the schema Hydra composes into, and the checks on its values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdyn_bench.registry import ConfigError, check_choice
from cdyn_bench.mixer.config import MixerConfig

POS_EMBS = ("none", "learned", "rotary")
BLOCK_NORMS = ("layer", "rms", "none")
DEVICES = ("auto", "cpu", "cuda")
WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class ModelConfig:
    """Backbone: embeddings, N pre-norm residual blocks of (mixer, optional MLP), final norm, head."""

    name: str = "gated"
    d_model: int = 64
    n_layers: int = 2
    pos_emb: str = "none"
    max_len: int = 4096
    mlp: bool = True
    mlp_ratio: int = 4
    norm: str = "layer"
    mixer: MixerConfig = field(default_factory=MixerConfig)

    def check(self) -> None:
        check_choice("model.pos_emb", self.pos_emb, POS_EMBS)
        check_choice("model.norm", self.norm, BLOCK_NORMS)
        for key in ("d_model", "n_layers", "max_len", "mlp_ratio"):
            check_positive(f"model.{key}", getattr(self, key))
        self.mixer.check(self.d_model)
        n = self.mixer.dims(self.d_model)[0]
        if self.pos_emb == "rotary" and n % 2:
            raise ConfigError(
                f"model.pos_emb=rotary needs an even head dimension; model.mixer.head_dim resolves to {n}. "
                "Allowed: an even head_dim, or pos_emb none/learned"
            )


@dataclass
class TrainConfig:
    """Optimisation and evaluation schedule."""

    lr: float = 3e-3
    weight_decay: float = 0.1
    batch_size: int = 64
    max_steps: int = 4000
    warmup_steps: int = 100
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_batch_size: int = 256
    target_accuracy: float = 0.99
    num_threads: int = 0

    def check(self) -> None:
        for key in ("lr", "batch_size", "max_steps", "eval_every", "eval_batch_size"):
            check_positive(f"train.{key}", getattr(self, key))
        for key in ("weight_decay", "warmup_steps", "grad_clip", "num_threads"):
            check_non_negative(f"train.{key}", getattr(self, key))
        if self.target_accuracy <= 0.0:
            raise ConfigError(
                f"train.target_accuracy={self.target_accuracy}: must be in (0, 1], or > 1 to never stop early"
            )


@dataclass
class RunConfig:
    """One run: model x task x training, a seed and where its record goes."""

    model: ModelConfig = field(default_factory=ModelConfig)
    task: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    device: str = "auto"
    force: bool = False
    out_dir: str = "outputs"
    sweep_name: str = "sweep"
    wandb: str = "offline"
    progress: bool = True

    def check(self) -> None:
        check_choice("device", self.device, DEVICES)
        check_choice("wandb", self.wandb, WANDB_MODES)
        check_non_negative("seed", self.seed)
        self.model.check()
        self.train.check()


def check_positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key}={value}: must be > 0")


def check_non_negative(key: str, value: float) -> None:
    if value < 0:
        raise ConfigError(f"{key}={value}: must be >= 0")


def register_schema() -> None:
    """Register RunConfig as the schema `conf/config.yaml` composes onto (types checked by OmegaConf)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="run_schema", node=RunConfig)


def to_run_config(cfg: Any) -> RunConfig:
    """Convert a composed DictConfig to a checked RunConfig; raises ConfigError on bad values."""
    from omegaconf import OmegaConf

    run_cfg = OmegaConf.to_object(cfg)
    assert isinstance(run_cfg, RunConfig)
    run_cfg.check()
    return run_cfg
