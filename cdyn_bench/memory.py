"""Memory a run will need, estimated from its config before anything is allocated.

The estimate is deliberately rough (within a small factor): it exists to refuse, with one line,
sizes that cannot fit (a seq_len of 100,000 with the quadratic form, a d_model of 100,000), not to
plan a budget. Parts: the data splits, parameters with gradients and AdamW's two moments, the
activations kept for the backward pass (the (B, H, T, T) coefficient matrices of the quadratic
form dominate at long T), and the logits.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cdyn_bench.mixer.evolutions import evolution
from cdyn_bench.registry import ConfigError

if TYPE_CHECKING:
    from cdyn_bench.config import RunConfig

FLOAT = 4
# int64 inputs, targets and train targets, and about as much again while a split is generated.
DATA_BYTES_PER_TOKEN = 48
# A parameter, its gradient and AdamW's two moments.
BYTES_PER_PARAMETER = 4 * FLOAT
# Copies of the (B, H, T, T) coefficient matrix kept for backward (scores, mask, weights, alpha).
QUADRATIC_COPIES = 4


@dataclass
class Part:
    """One term of the estimate and the config key that sets it."""

    key: str
    bytes: float


def parameters(cfg: RunConfig, vocab_size: int) -> int:
    """Approximate parameter count of the model (projections, gates, MLP, embeddings, head)."""
    m, d = cfg.model.mixer, cfg.model.d_model
    n, dv = m.dims(d)
    H, Hk = m.n_heads, 1 if m.share_qk else m.n_heads
    width = 2 * Hk * n + H * dv
    mixer = d * width + width * m.conv_size + H * dv * d * (2 if m.out_gate else 1) + 2 * d * H
    mixer += evolution(m.A).parameters(d, H, n)
    mlp = 2 * cfg.model.mlp_ratio * d * d if cfg.model.mlp else 0
    # a learned position table, or the last-position decoder's sincos table: max_len rows
    positions = cfg.model.max_len * d if cfg.model.pos_emb == "learned" or cfg.task.readout == "last_position" else 0
    return cfg.model.n_layers * (mixer + mlp + 4 * d) + 2 * vocab_size * d + positions


def coefficient_floats(cfg: RunConfig, batch: int, seq_len: int) -> float:
    """Floats of the coefficient matrices (or chunk blocks) of one layer for a batch."""
    m = cfg.model.mixer
    n = m.dims(cfg.model.d_model)[0]
    form = m.resolved_form()
    per_pair = n if evolution(m.A).factor == "diagonal" and form == "quadratic" else 1
    span = seq_len if form == "quadratic" else min(m.chunk_size, seq_len) if form == "chunked" else 1
    return QUADRATIC_COPIES * batch * m.n_heads * seq_len * span * per_pair


def activation_bytes(cfg: RunConfig, batch: int, seq_len: int, vocab_size: int) -> tuple[float, float]:
    """(per-token activations of all layers, coefficient matrices of all layers) for one step."""
    m, d = cfg.model.mixer, cfg.model.d_model
    n, dv = m.dims(d)
    width = 2 * m.n_heads * n + m.n_heads * dv
    per_token = 3 * width + 3 * m.n_heads * dv + 2 * cfg.model.mlp_ratio * d + 8 * d
    tokens = batch * seq_len
    layers = cfg.model.n_layers
    dense = FLOAT * (layers * tokens * per_token + 2 * tokens * vocab_size)
    return dense, FLOAT * layers * coefficient_floats(cfg, batch, seq_len)


def estimate(cfg: RunConfig, seq_len: int, vocab_size: int) -> list[Part]:
    """The parts of a run's peak memory, largest first."""
    task, train = cfg.task, cfg.train
    stored = (task.num_train + task.num_val + task.num_test + train.batch_size) * seq_len
    batch = max(train.batch_size, train.eval_batch_size)
    dense, coefficients = activation_bytes(cfg, batch, seq_len, vocab_size)
    parts = [
        Part("task.seq_len" if stored > 10 * (task.num_val + task.num_test) else "task.num_train",
             DATA_BYTES_PER_TOKEN * stored),
        Part("model.d_model", BYTES_PER_PARAMETER * parameters(cfg, vocab_size)),
        # Activations grow with batch x length: name the one that is out of its usual proportion.
        Part("train.batch_size" if 4 * batch > seq_len else "task.seq_len", dense),
        Part("task.seq_len", coefficients),
    ]
    return sorted(parts, key=lambda p: -p.bytes)


def available_memory() -> int:
    """Bytes of memory available to a new allocation here (MemAvailable on Linux)."""
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def size(n: float) -> str:
    """'1.5 GB': bytes in decimal units up to TB."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB" if n < 10_000 else f"{n:.1e} TB"


# The keys whose size an estimate can blame, each with a size usual for this tool's runs (a CPU-scale
# preset at most): the key furthest beyond its usual size among those that drive the estimate is named.
USUAL = {"train.batch_size": 64, "train.eval_batch_size": 256, "task.seq_len": 256, "task.vocab_size": 8192,
         "task.num_train": 12_800, "task.num_val": 2_000, "task.num_test": 4_000, "model.n_layers": 4,
         "model.d_model": 256, "model.mlp_ratio": 4, "model.max_len": 2048, "model.mixer.head_dim": 128,
         "model.mixer.value_dim": 128, "model.mixer.conv_size": 4, "model.mixer.chunk_size": 64}
HALVABLE = tuple(USUAL)
# A key drives the estimate when halving it saves at least this share of the total.
DRIVES = 0.3


def total_with_half(cfg: RunConfig, key: str, seq_len: int, vocab_size: int) -> float:
    """The estimate's total with `key` halved (the others as they are)."""
    import copy

    if key == "task.seq_len":
        seq_len = max(1, seq_len // 2)
    elif key == "task.vocab_size":
        vocab_size = max(1, vocab_size // 2)
    else:
        *parents, leaf = key.split(".")
        if cfg.lookup(key) == 0:  # 0: the default size (head_dim, value_dim from d_model), not a size to halve
            return sum(p.bytes for p in estimate(cfg, seq_len, vocab_size))
        cfg = copy.deepcopy(cfg)
        node = cfg.lookup(".".join(parents))
        setattr(node, leaf, max(1 if leaf != "num_train" else 0, getattr(node, leaf) // 2))
    return sum(p.bytes for p in estimate(cfg, seq_len, vocab_size))


def culprit(cfg: RunConfig, seq_len: int, vocab_size: int) -> str:
    """The key that made the run too big: of those whose halving saves DRIVES of the estimate, the one
    furthest beyond its USUAL size (the largest saving when none is)."""
    total = sum(p.bytes for p in estimate(cfg, seq_len, vocab_size))
    saves = {key: total - total_with_half(cfg, key, seq_len, vocab_size) for key in HALVABLE}
    values = {key: key_value(cfg, key, seq_len, vocab_size) for key in HALVABLE}
    driving = [key for key in HALVABLE if saves[key] >= DRIVES * total]
    return max(driving or HALVABLE, key=lambda key: (values[key] / USUAL[key] if driving else saves[key]))


def key_value(cfg: RunConfig, key: str, seq_len: int, vocab_size: int) -> int:
    return {"task.seq_len": seq_len, "task.vocab_size": vocab_size}.get(key) or cfg.lookup(key)


def check_memory(cfg: RunConfig, seq_len: int, vocab_size: int, available: int | None = None,
                 where: str = "this machine") -> None:
    """ConfigError naming the key that made the run too big (`culprit`) when the estimate exceeds `available` bytes."""
    parts = estimate(cfg, seq_len, vocab_size)
    total = sum(p.bytes for p in parts)
    available = available_memory() if available is None else available
    if total <= available:
        return
    key = culprit(cfg, seq_len, vocab_size)
    value = key_value(cfg, key, seq_len, vocab_size)
    share = total - total_with_half(cfg, key, seq_len, vocab_size)
    raise ConfigError(
        f"{key}={value}: the run needs about {size(total)} (halving {key} would save {size(share)}), "
        f"{where} has {size(available)} available. Lower {key}"
        + (" or train.batch_size" if key == "task.seq_len" else "")
        + (" or use model.mixer.form=chunked" if key == "task.seq_len" and cfg.model.mixer.phi == "identity"
           and cfg.model.mixer.resolved_form() == "quadratic" else "")
    )
