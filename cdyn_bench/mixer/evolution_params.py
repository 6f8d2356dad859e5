"""EvolutionParams: A_t of one mixer from its block input, built by the kind of A (cdyn_bench.mixer.evolutions),
with the Householder strength beta_t and the mLSTM input gate i_t the impulse b_j may draw on."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdyn_bench.mixer.components import Evolution
from cdyn_bench.mixer.config import MixerConfig
from cdyn_bench.mixer.evolutions import evolution
from cdyn_bench.mixer.gates import InputGate


class EvolutionParams(nn.Module):
    """A_t from the block input u, with the gates the impulse b_j may draw on (Delta_t, beta_t)."""

    def __init__(self, cfg: MixerConfig, d_model: int, n: int):
        super().__init__()
        self.kind, self.n_heads = evolution(cfg.A), cfg.n_heads
        self.gate = self.kind.build(cfg, d_model, n)
        needs_beta = self.kind.householder or cfg.b == "beta_key"
        self.beta = nn.Linear(d_model, cfg.n_heads, bias=False) if needs_beta else None
        self.input_gate = InputGate(d_model, cfg.n_heads) if cfg.b == "input_gate_key" else None
        self.beta_max = cfg.beta_max

    def forward(self, u: Tensor, k: Tensor) -> tuple[Evolution, Tensor | None, Tensor | None]:
        """(A_t, Delta_t (B, T, H) or None, beta_t (B, T, H) or None); k (B, T, H, n) is the Householder direction."""
        log_a, dt = self.kind.decay(self.gate, u, self.n_heads) if self.gate is not None else (None, None)
        beta = torch.sigmoid(self.beta(u)) if self.beta is not None else None
        if beta is not None and self.beta_max != 1.0:
            beta = self.beta_max * beta
        log_i = self.input_gate(u) if self.input_gate is not None else None
        if self.kind.rotates:
            return Evolution(log_a, log_i=log_i, angles=self.kind.angles(self.gate, u, self.n_heads)), dt, beta
        if not self.kind.householder:
            return Evolution(log_a, log_i=log_i), dt, beta
        return Evolution(log_a, beta, F.normalize(k, dim=-1), log_i), dt, beta
