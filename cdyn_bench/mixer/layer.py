"""CoeffMixer: projections, short convolution and gates around one form of the mixer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdyn_bench.mixer.components import ETA_FS, FEATURE_MAPS, Evolution, EvolutionParams
from cdyn_bench.mixer.config import MixerConfig
from cdyn_bench.mixer.forms import FORMS, coefficients


def rotate(x: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding of x (B, T, H, n) over pairs of channels; n must be even."""
    T, n = x.shape[1], x.shape[-1]
    freqs = base ** (-torch.arange(0, n, 2, device=x.device, dtype=x.dtype) / n)
    angles = torch.arange(T, device=x.device, dtype=x.dtype)[:, None] * freqs  # (T, n/2)
    cos, sin = angles.cos()[None, :, None], angles.sin()[None, :, None]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class CoeffMixer(nn.Module):
    """One coefficient-dynamics token mixer with H heads of state size n (see forms.py)."""

    def __init__(self, d_model: int, cfg: MixerConfig, rotary: bool = False):
        super().__init__()
        self.cfg, self.rotary = cfg, rotary
        self.n, self.dv = cfg.dims(d_model)
        H = cfg.n_heads
        width = H * (2 * self.n + self.dv)
        self.proj = nn.Linear(d_model, width, bias=False)
        self.conv = (nn.Conv1d(width, width, cfg.conv_size, groups=width, padding=cfg.conv_size - 1)
                     if cfg.conv_size else None)
        self.evolution = EvolutionParams(cfg.A, d_model, H, self.n, cfg.gamma, cfg.gate_min, cfg.gate_max)
        self.eta_proj = nn.Linear(d_model, H) if cfg.eta == "learned" else None
        self.gate = nn.Linear(d_model, H * self.dv, bias=False) if cfg.out_gate else None
        self.out_norm = nn.GroupNorm(H, H * self.dv) if cfg.out_norm == "group" else None
        self.out = nn.Linear(H * self.dv, d_model, bias=False)

    def components(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Evolution, Tensor | None]:
        """q, b (B, T, H, n), v (B, T, H, dv), A_t and the learned eta (B, T, H) from u (B, T, d)."""
        B, T, _ = u.shape
        x = self.proj(u)
        if self.conv is not None:
            x = F.silu(self.conv(x.transpose(1, 2))[..., :T].transpose(1, 2))
        H, n = self.cfg.n_heads, self.n
        q, k, v = x.split([H * n, H * n, H * self.dv], dim=-1)
        q, k, v = q.view(B, T, H, n), k.view(B, T, H, n), v.view(B, T, H, self.dv)
        if self.rotary:
            q, k = rotate(q), rotate(k)
        psi = FEATURE_MAPS[self.cfg.psi]
        q, k = psi(q), psi(k)
        if self.cfg.normalize_k:
            k = F.normalize(k, dim=-1)
        b = k / math.sqrt(n) if self.cfg.scale_b else k
        eta = None
        if self.eta_proj is not None:
            eta = torch.exp(ETA_FS[self.cfg.eta_f](self.eta_proj(u)))
        return q, b, v, self.evolution(u), eta

    def forward(self, u: Tensor) -> Tensor:
        q, b, v, evolution, eta = self.components(u)
        y = FORMS[self.cfg.form](q, b, v, evolution, self.cfg.phi, self.cfg.eta, eta)
        y = y.flatten(2)  # (B, T, H*dv)
        if self.out_norm is not None:
            y = self.out_norm(y.transpose(1, 2)).transpose(1, 2)
        if self.gate is not None:
            y = y * F.silu(self.gate(u))
        return self.out(y)

    def coefficients(self, u: Tensor) -> Tensor:
        """alpha (B, H, T, T) of this mixer for block input u."""
        q, b, _, evolution, eta = self.components(u)
        return coefficients(q, b, evolution, self.cfg.phi, self.cfg.eta, eta)

    def state_size(self, seq_len: int) -> int:
        """Floats per sequence needed at inference: the recurrent state when phi is linear, else the KV cache."""
        H, n, dv = self.cfg.n_heads, self.n, self.dv
        if self.cfg.phi == "identity" and self.cfg.eta != "abs_sum":
            return H * n * dv + (H * n if self.cfg.eta == "sum" else 0)
        return seq_len * H * (n + dv)
