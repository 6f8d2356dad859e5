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
        # A product of h Householders per token: h - 1 more directions and strengths, each from its own projection.
        self.h, self.n = cfg.householders, n
        self.directions = nn.Linear(d_model, (self.h - 1) * cfg.n_heads * n, bias=False) if self.h > 1 else None
        self.betas = nn.Linear(d_model, (self.h - 1) * cfg.n_heads, bias=False) if self.h > 1 else None
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
        if self.h == 1:
            return Evolution(log_a, beta, F.normalize(k, dim=-1), log_i), dt, beta
        # (B, T, H, h) strengths and (B, T, H, h, n) unit directions, the key's first.
        B, T, H, _ = k.shape
        more = self.betas(u).view(B, T, self.h - 1, H).transpose(2, 3)
        betas = torch.cat([beta[..., None], self.beta_max * torch.sigmoid(more)], -1)
        extra = self.directions(u).view(B, T, self.h - 1, H, self.n).transpose(2, 3)
        directions = F.normalize(torch.cat([k[..., None, :], extra], -2), dim=-1)
        return Evolution(log_a, betas, directions, log_i), dt, beta
