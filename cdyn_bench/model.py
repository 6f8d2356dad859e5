"""The language-model backbone around the mixer: embeddings, pre-norm residual blocks, head."""

from __future__ import annotations

from torch import Tensor, nn

from cdyn_bench.config import ModelConfig
from cdyn_bench.mixer.layer import CoeffMixer

NORMS = {"layer": nn.LayerNorm, "rms": nn.RMSNorm, "none": lambda d: nn.Identity()}


class Block(nn.Module):
    """x + mixer(norm(x)), then x + mlp(norm(x)) when the MLP is on."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.norm1 = NORMS[cfg.norm](d)
        self.mixer = CoeffMixer(d, cfg.mixer, rotary=cfg.pos_emb == "rotary")
        self.mlp = None
        if cfg.mlp:
            self.norm2 = NORMS[cfg.norm](d)
            self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Linear(cfg.mlp_ratio * d, d))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.mixer(self.norm1(x))
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x


class LanguageModel(nn.Module):
    """Token ids (B, T) -> logits over the vocabulary, at every position or only at selected ones."""

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.pos_emb == "learned" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = NORMS[cfg.norm](cfg.d_model)
        self.head = nn.Linear(cfg.d_model, vocab_size, bias=False)

    def hidden(self, tokens: Tensor) -> Tensor:
        """Final-norm hidden states (B, T, d)."""
        x = self.embed(tokens)
        if self.pos is not None:
            x = x + self.pos.weight[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, tokens: Tensor, select: Tensor | None = None) -> Tensor:
        """Logits (B, T, V), or (N, V) at the N positions where the bool mask `select` (B, T) is set."""
        h = self.hidden(tokens)
        return self.head(h if select is None else h[select])

    def state_size(self, seq_len: int) -> int:
        """Inference state of all mixers, floats per sequence."""
        return sum(block.mixer.state_size(seq_len) for block in self.blocks)
