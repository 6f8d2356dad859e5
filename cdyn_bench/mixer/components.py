"""The pluggable pieces of the mixer, keyed by their config names: psi, phi, eta's f, and A_t."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _elu1(x: Tensor) -> Tensor:
    return F.elu(x) + 1.0


FEATURE_MAPS = {
    "none": lambda x: x,
    "elu1": _elu1,
    "relu": F.relu,
    "exp": torch.exp,
    "softmax": lambda x: torch.softmax(x, dim=-1),
}

READOUTS = {
    "identity": lambda x: x,
    "exp": torch.exp,
    "softplus": F.softplus,
    "relu": F.relu,
    "elu1": _elu1,
    "sigmoid": torch.sigmoid,
}

INPUTS = ("key",)
NORMALISERS = ("one", "sum", "abs_sum", "learned")
EVOLUTIONS = ("identity", "fixed", "learned_scalar", "scalar_gate", "diag_gate")

# f in the learned normaliser eta_i = exp(f(w^T u_i + o_h)).
ETA_FS = {"exp": torch.exp, "elu": F.elu, "softplus": F.softplus, "sigmoid": torch.sigmoid}


@dataclass
class Evolution:
    """A_t for every step, in log space.

    log_a: None for A_t = I; (B, T, H) for a scalar a_t*I; (B, T, H, n) for Diag(a_t).
    """

    log_a: Tensor | None


def _logit(p: Tensor) -> Tensor:
    return torch.log(p) - torch.log1p(-p)


class EvolutionParams(nn.Module):
    """Produces A_t from the block input u; learned and gated forms have a = sigmoid(.) in (0, 1)."""

    def __init__(self, kind: str, d_model: int, n_heads: int, n: int,
                 gamma: float, gate_min: float, gate_max: float):
        super().__init__()
        self.kind, self.n_heads, self.gamma = kind, n_heads, gamma
        width = {"learned_scalar": n_heads, "scalar_gate": n_heads, "diag_gate": n_heads * n}.get(kind, 0)
        # Initial factors spread evenly over [gate_min, gate_max], as logits.
        init = _logit(torch.linspace(gate_min, gate_max, width)) if width else None
        if kind == "learned_scalar":
            self.logit = nn.Parameter(init)
        elif kind in ("scalar_gate", "diag_gate"):
            self.proj = nn.Linear(d_model, width)
            with torch.no_grad():
                self.proj.weight.mul_(0.1)
                self.proj.bias.copy_(init)

    def forward(self, u: Tensor) -> Evolution:
        B, T, _ = u.shape
        if self.kind == "identity":
            return Evolution(None)
        if self.kind == "fixed":
            return Evolution(u.new_full((B, T, self.n_heads), math.log(self.gamma)))
        if self.kind == "learned_scalar":
            return Evolution(F.logsigmoid(self.logit).expand(B, T, self.n_heads))
        log_a = F.logsigmoid(self.proj(u))
        if self.kind == "diag_gate":
            log_a = log_a.view(B, T, self.n_heads, -1)
        return Evolution(log_a)
