"""The backbone around the mixer: embeddings, pre-norm residual blocks, and a read-out to token logits.

Two read-outs. 'lm': the head reads the hidden state at each selected position (a causal language
model). 'last_position': MAD's auto-encoder (athms/mad-lab `mad/model/auto_encoder.py`) for
compression: the blocks encode the sequence, the hidden state at the last position is its
representation r, and every selected position t is decoded from r + sincos(t) by an MLP
(norm, linear, GELU, norm, linear, GELU) before the final norm and head.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cdyn_bench.choices import TASK_READOUTS
from cdyn_bench.config import ModelConfig
from cdyn_bench.mixer.layer import CoeffMixer
from cdyn_bench.mixer.stream import Cache
from cdyn_bench.registry import check_choice

NORMS = {"layer": nn.LayerNorm, "rms": nn.RMSNorm, "none": lambda d: nn.Identity()}


def sincos_positions(num_positions: int, d: int) -> Tensor:
    """(num_positions, d) fixed sinusoidal embeddings: sin of d//2 frequencies, then cos, zero-padded."""
    half = d // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half) / max(half - 1, 1))
    angle = torch.arange(num_positions).unsqueeze(1) * freq
    return nn.functional.pad(torch.cat([angle.sin(), angle.cos()], dim=1), (0, d % 2))


class Block(nn.Module):
    """x + mixer(norm(x)) (x + mixer(x) without pre_norm), then x + mlp(norm(x)) when the MLP is on."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.norm1 = NORMS[cfg.norm if cfg.pre_norm else "none"](d)
        self.mixer = CoeffMixer(d, cfg.mixer, rotary=cfg.pos_emb == "rotary")
        self.mlp = None
        if cfg.mlp:
            self.norm2 = NORMS[cfg.norm](d)
            self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Linear(cfg.mlp_ratio * d, d))

    def forward(self, x: Tensor, select: Tensor | None = None) -> Tensor:
        """x (B, T, d) -> (B, T, d), or (N, d) at the N positions set in `select` (B, T): the MLP acts on
        each position alone, so it runs only where an output is read."""
        x = x + self.mixer(self.norm1(x))
        if select is not None:
            x = x[select]
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x

    def step(self, x: Tensor, cache: Cache | None) -> tuple[Tensor, Cache]:
        """forward() for tokens that continue the prefix in `cache`; and the mixer's cache after them."""
        y, cache = self.mixer.step(self.norm1(x), cache)
        x = x + y
        return (x + self.mlp(self.norm2(x)) if self.mlp is not None else x), cache


class LastPositionDecoder(nn.Module):
    """MAD's compression decoder: position t's feature from the last hidden state and sincos(t)."""

    def __init__(self, d: int, max_len: int, norm: str):
        super().__init__()
        self.mlp = nn.Sequential(
            NORMS[norm](d), nn.Linear(d, d), nn.GELU(), NORMS[norm](d), nn.Linear(d, d), nn.GELU(),
        )
        self.register_buffer("positions", sincos_positions(max_len, d), persistent=False)

    def forward(self, h: Tensor, select: Tensor) -> Tensor:
        """Features (N, d) at the N positions set in `select` (B, T), from h[:, -1] only."""
        batch, position = select.nonzero(as_tuple=True)
        return self.mlp(h[batch, -1] + self.positions[position])


class LanguageModel(nn.Module):
    """Token ids (B, T) -> logits over the vocabulary, at every position or only at selected ones."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, readout: str = "lm"):
        super().__init__()
        check_choice("task.readout", readout, TASK_READOUTS)
        self.cfg = cfg
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.pos_emb == "learned" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = NORMS[cfg.norm](cfg.d_model)
        self.decoder = LastPositionDecoder(cfg.d_model, cfg.max_len, cfg.norm) if readout == "last_position" else None
        self.out_norm = NORMS[cfg.norm](cfg.d_model) if self.decoder is not None else nn.Identity()
        self.head = nn.Linear(cfg.d_model, vocab_size, bias=False)

    def hidden(self, tokens: Tensor, select: Tensor | None = None) -> Tensor:
        """Final-norm hidden states (B, T, d), or (N, d) at the positions set in `select` (B, T)."""
        x = self.embed(tokens)
        if self.pos is not None:
            x = x + self.pos.weight[: tokens.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, select if i == len(self.blocks) - 1 else None)
        return self.norm(x)

    def forward(self, tokens: Tensor, select: Tensor | None = None) -> Tensor:
        """Logits (B, T, V), or (N, V) at the N positions where the bool mask `select` (B, T) is set."""
        if self.decoder is None:
            return self.head(self.hidden(tokens, select))
        h = self.hidden(tokens)
        mask = torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device) if select is None else select
        logits = self.head(self.out_norm(self.decoder(h, mask)))
        return logits if select is not None else logits.view(*tokens.shape, -1)

    def step(self, tokens: Tensor, caches: list[Cache] | None = None) -> tuple[Tensor, list[Cache]]:
        """Logits (B, T, V) of tokens (B, T) that continue the prefix in `caches` (None: a new sequence), and
        the caches after them, one per block: prefill with the prompt, then generate with T = 1. Equals
        forward() over the whole sequence (a test checks it for every preset)."""
        if self.decoder is not None:
            raise ValueError("task.readout=last_position decodes from the whole sequence; it cannot be streamed")
        caches = caches if caches is not None else [None] * len(self.blocks)
        start = caches[0].position if caches[0] is not None else 0
        x = self.embed(tokens)
        if self.pos is not None:
            if start + tokens.shape[1] > self.cfg.max_len:
                raise ValueError(f"position {start + tokens.shape[1]} is past the learned position table "
                                 f"(model.max_len={self.cfg.max_len})")
            x = x + self.pos.weight[start: start + tokens.shape[1]]
        new = []
        for block, cache in zip(self.blocks, caches):
            x, cache = block.step(x, cache)
            new.append(cache)
        return self.head(self.norm(x)), new

    def state_size(self, seq_len: int) -> int:
        """Inference state of all mixers, floats per sequence."""
        return sum(block.mixer.state_size(seq_len) for block in self.blocks)
