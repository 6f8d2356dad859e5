"""Typed run configuration: the schema Hydra composes into, every check on its values, a run's identity.

Defaults live in the dataclasses below (and the task generators' signatures); the YAML files under
conf/ hold presets and experiments only. Nothing here imports torch, so a bad value is refused
before any model code loads.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from cdyn_bench.choices import BLOCK_NORMS, DECAY_RULES, DEVICES, POS_EMBS, WANDB_MODES
from cdyn_bench.mixer.config import MixerConfig
from cdyn_bench.registry import ConfigError, check_choice, did_you_mean, shown
from cdyn_bench.search_rule import SearchRule
from cdyn_bench.task_config import task_config

# Keys that change where, how fast or how a run is reported, never what it computes.
OUTPUT_ONLY_KEYS = ("force", "out_dir", "sweep_name", "reuse", "wandb", "progress", "search", "detach", "train.num_threads",
                    "train.compile", "train.save_weights", "train.checkpoint_every")


@dataclass
class ModelConfig:
    """Backbone: embeddings, N pre-norm residual blocks of (mixer, optional MLP), final norm, head.

    These defaults are the base knobs, not a preset: presets are conf/model/*.yaml (`model=gated`,
    the default of cdyn-run and of `compose()`). norm: the blocks' pre-norms and the final norm;
    pre_norm: false feeds each mixer its block's input unnormalised (the MLP keeps its pre-norm), so
    growth in the residual stream reaches the mixer.
    """

    name: str = "custom"
    d_model: int = 64
    n_layers: int = 2
    pos_emb: str = "none"
    max_len: int = 4096
    mlp: bool = True
    mlp_ratio: int = 4
    norm: str = "layer"
    pre_norm: bool = True
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

    def inactive(self) -> list[str]:
        """Keys without effect given the others, as dotted paths below `model.`."""
        off = ["mlp_ratio"] if not self.mlp else []
        # The learned position table draws its init from the RNG; the sincos table of the
        # last-position decoder does not depend on max_len.
        off += ["max_len"] if self.pos_emb != "learned" else []
        off += ["pre_norm"] if self.norm == "none" else []
        return off + [f"mixer.{k}" for k in self.mixer.inactive()]


@dataclass
class TrainConfig:
    """Optimisation and evaluation schedule.

    AdamW with betas and weight decay on `weight_decay_on` parameters: matrices (every parameter of
    rank >= 2 that is not marked as an evolution parameter, e.g. Mamba's A_log and dt_bias) or all
    (MAD). The learning rate warms up linearly over warmup_steps, then follows a cosine from lr to
    final_lr at max_steps. num_threads: torch threads, 0 = the cores this process may use.
    compile: torch.compile the training step's model (tens of seconds of compilation at the start; it
    pays only for long runs of the elementwise-heavy presets, see results/bench/train.md). Like
    num_threads it changes results only at rounding level and is not part of a run's identity.
    save_weights: also write the model's weights at initialisation and after training beside the record
    (weights_init.pt, weights_final.pt; for spectra and coefficient maps); not part of the identity.
    checkpoint_every: save the training state (cdyn_bench.checkpoint) every this many steps (0: only on SIGUSR2
    or SIGTERM), so a rerun of a killed run resumes there with the same numbers; output-only, deleted with the
    record's writing.
    patience: the plateau stop, after this many evaluations in a row without a validation accuracy above
    the best so far by plateau_delta (0 = never; cdyn_bench.search chooses it for extended searches).
    """

    lr: float = 3e-3
    weight_decay: float = 0.1
    weight_decay_on: str = "matrices"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    final_lr: float = 0.0
    batch_size: int = 64
    max_steps: int = 4000
    warmup_steps: int = 100
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_batch_size: int = 256
    target_accuracy: float = 0.995
    patience: int = 0
    plateau_delta: float = 0.01
    num_threads: int = 0
    compile: bool = False
    save_weights: bool = False
    checkpoint_every: int = 500

    def check(self) -> None:
        for key in ("lr", "batch_size", "max_steps", "eval_every", "eval_batch_size"):
            check_positive(f"train.{key}", getattr(self, key))
        for key in ("weight_decay", "warmup_steps", "grad_clip", "num_threads", "final_lr", "patience", "plateau_delta",
                    "checkpoint_every"):
            check_non_negative(f"train.{key}", getattr(self, key))
        check_choice("train.weight_decay_on", self.weight_decay_on, DECAY_RULES)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"train.betas={list(self.betas)}: need two values in [0, 1), e.g. [0.9,0.999]")
        if self.final_lr > self.lr:
            raise ConfigError(f"train.final_lr={self.final_lr}: must be <= train.lr={self.lr}")
        if self.target_accuracy <= 0.0:
            raise ConfigError(
                f"train.target_accuracy={self.target_accuracy}: must be in (0, 1], or > 1 to never stop early"
            )

    def notes(self) -> list[str]:
        """What a legal but surprising setting does, one line each (printed before the run)."""
        if self.warmup_steps >= self.max_steps:
            return [f"train.warmup_steps={self.warmup_steps} >= train.max_steps={self.max_steps}: the lr rises linearly "
                    f"for the whole run and ends at {self.max_steps / self.warmup_steps:.0%} of train.lr={self.lr:g}; "
                    "the cosine never starts"]
        return []

    def inactive(self) -> list[str]:
        off = ["weight_decay_on"] if self.weight_decay == 0 else []
        return off + (["patience", "plateau_delta"] if self.patience == 0 else [])


@dataclass
class RunConfig:
    """One run: model x task x training, a seed and where its record goes.

    `task` is composed as a mapping and typed by `check()` into the task's own TaskConfig.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    task: Any = field(default_factory=lambda: {"name": "mqar"})
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    device: str = "auto"
    force: bool = False
    out_dir: str = "outputs"
    sweep_name: str = "sweep"
    # Sweep folders (or out_dirs) whose finished record of the same config (same hash and numerics
    # version) is copied into this run's folder instead of training it again.
    reuse: list[str] = field(default_factory=list)
    wandb: str = "offline"
    progress: bool = True
    # How an experiment's search is judged and extended (cdyn_bench.search; reproduce.py --search).
    search: SearchRule = field(default_factory=SearchRule)
    # A sweep on SLURM: submit its jobs and return (the same command later finishes what is missing).
    detach: bool = False

    def check(self) -> tuple[int, int]:
        """Every check of the config's own values; types the task section. Returns (the model's sequence
        length, the vocabulary size) for the memory estimate, which the composition checks one layer up
        (cdyn_bench.compose)."""
        if isinstance(self.task, Mapping):
            self.task = task_config(self.task)
        check_choice("device", self.device, DEVICES)
        check_choice("wandb", self.wandb, WANDB_MODES)
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed={self.seed}: must be an integer in [0, 2^63)")
        check_finite(self)
        check_paths(self.out_dir, self.sweep_name)
        check_reuse(self.reuse)
        self.model.check()
        self.train.check()
        self.search.check()
        sample = self.task.check()
        seq_len = sample.inputs.shape[1]
        check_positions(seq_len, self)
        if self.device == "cuda":
            check_cuda()
        return seq_len, self.task.vocabulary(sample)

    def lookup(self, dotted: str) -> Any:
        node: Any = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node

    def identity(self) -> dict[str, Any]:
        """The config without output-only keys and without knobs that have no effect: what a run's hash hashes."""
        config = dataclasses.asdict(self)
        inactive = [f"model.{k}" for k in self.model.inactive()] + [f"train.{k}" for k in self.train.inactive()]
        for dotted in (*OUTPUT_ONLY_KEYS, *inactive):
            *parents, leaf = dotted.split(".")
            node = config
            for part in parents:
                node = node[part]
            node.pop(leaf)
        return config


def check_positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key}={value}: must be > 0")


def check_non_negative(key: str, value: float) -> None:
    if value < 0:
        raise ConfigError(f"{key}={value}: must be >= 0")


def check_finite(node: Any, prefix: str = "") -> None:
    """Refuse nan and inf in every float key, nested dataclasses and lists included."""
    for f in dataclasses.fields(node):
        value, key = getattr(node, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_finite(value, f"{key}.")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"{key}={item}: must be a finite number")


def check_reuse(folders: list[str]) -> None:
    from cdyn_bench.record import REUSABLE

    for folder in folders:
        if not any((Path(folder) / kind).is_dir() for kind in REUSABLE):
            raise ConfigError(f"reuse={folder!r}: holds no cells/ or runs/ folder; must name sweep folders (with cells/) "
                              "or out_dirs (with runs/) of finished runs")


def check_paths(out_dir: str, sweep_name: str) -> None:
    """out_dir must name a folder; sweep_name must stay inside <out_dir>/sweeps."""
    if not out_dir.strip():
        raise ConfigError("out_dir='': must name a folder for the run records (default: outputs)")
    parts = PurePath(sweep_name).parts
    if not sweep_name.strip() or PurePath(sweep_name).is_absolute() or ".." in parts:
        raise ConfigError(f"sweep_name={shown(sweep_name)}: must be a relative name inside out_dir/sweeps "
                          "(no '..', not absolute, not empty)")
    for key, value in (("out_dir", out_dir), ("sweep_name", sweep_name)):
        long = [part for part in PurePath(value).parts if len(part.encode()) > NAME_MAX]
        if long:
            raise ConfigError(f"{key}={shown(value)}: a folder name of {len(long[0].encode())} bytes; "
                              f"the file system allows at most {NAME_MAX} per name")


# The longest file or folder name (bytes) Linux file systems allow.
NAME_MAX = 255





def check_positions(seq_len: int, cfg: RunConfig) -> None:
    """Learned position tables (pos_emb=learned, the last-position decoder) hold model.max_len rows."""
    if seq_len > cfg.model.max_len and (cfg.model.pos_emb == "learned" or cfg.task.readout == "last_position"):
        raise ConfigError(
            f"task.seq_len={seq_len}: longer than model.max_len={cfg.model.max_len}, the size of the position table; "
            "raise model.max_len or shorten the sequence"
        )


def check_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("device=cuda: CUDA is not available on this machine. Allowed here: auto, cpu")


def check_known_keys(node: Any, schema: type, prefix: str = "") -> None:
    """Refuse a composed key that the schema does not have (e.g. `+model.mixer.gama=1.05`)."""
    names = {f.name: f for f in dataclasses.fields(schema)}
    for key in node:
        if key not in names:
            where = prefix.rstrip(".") or "the top level"
            # With a suggestion, the suggestion; without one, every key allowed there.
            hint = did_you_mean(key, names) or f" Allowed under {where}: {', '.join(names)}"
            raise ConfigError(f"{prefix}{key}: unknown key.{hint}" + (f" (cdyn-run --help lists the keys under {where})"
                                                                      if did_you_mean(key, names) else ""))
        kind = names[key].type
        child = node[key]
        schema_of = {"ModelConfig": ModelConfig, "TrainConfig": TrainConfig, "MixerConfig": MixerConfig,
                     "SearchRule": SearchRule}.get(kind)
        if schema_of is not None and isinstance(child, Mapping):
            check_known_keys(child, schema_of, f"{prefix}{key}.")


def bool_keys(schema: type = None, prefix: str = "") -> list[str]:
    """The dotted keys of the schema whose type is bool (OmegaConf would also take 2 or 'yes' for them)."""
    schema = schema or RunConfig
    nested = {"ModelConfig": ModelConfig, "TrainConfig": TrainConfig, "MixerConfig": MixerConfig}
    keys = []
    for f in dataclasses.fields(schema):
        if f.type == "bool":
            keys.append(prefix + f.name)
        elif f.type in nested:
            keys += bool_keys(nested[f.type], f"{prefix}{f.name}.")
    return keys


def check_bool_overrides(overrides: list[str]) -> None:
    """Refuse a boolean key set to anything but true or false on the command line (e.g. force=2)."""
    booleans = set(bool_keys())
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if sep and key in booleans and any(v.strip().lower() not in ("true", "false") for v in value.split(",")):
            raise ConfigError(f"{key}={shown(value)}: must be true or false")


