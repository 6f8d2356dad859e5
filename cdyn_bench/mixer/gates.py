"""Parametrisations of a_t in log space (fixed gamma, RetNet, sigmoid/GLA, Mamba, mLSTM gates) and the input gate
i_t; the kinds of A (cdyn_bench.mixer.evolutions) build the one they use."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# The knobs (a cdyn_bench.mixer.config.MixerConfig, which imports the registry of A whose kinds build these gates):
# typed loosely to keep the import one way.
MixerConfig = Any


def no_weight_decay(param: nn.Parameter) -> nn.Parameter:
    """Mark a parameter of the evolution (rates, dt_bias, gate offsets) as exempt from weight decay
    whatever its rank, as Mamba marks A_log and D; cdyn_bench.train reads the mark."""
    param._no_weight_decay = True
    return param


def logit(p: Tensor) -> Tensor:
    return torch.log(p) - torch.log1p(-p)


def inverse_softplus(x: Tensor) -> Tensor:
    return x + torch.log(-torch.expm1(-x))


def projection(d_model: int, width: int, rank: int, bias: bool = True) -> nn.Module:
    """u -> W u (+ c): a full linear map, or a rank-`rank` product (GLA's gate, Mamba's dt_proj)."""
    if rank == 0:
        return nn.Linear(d_model, width, bias=bias)
    return nn.Sequential(nn.Linear(d_model, rank, bias=False), nn.Linear(rank, width, bias=bias))


def last_linear(proj: nn.Module) -> nn.Linear:
    return proj if isinstance(proj, nn.Linear) else proj[-1]


def fixed_log_gamma(cfg: MixerConfig) -> Tensor:
    """(H,) log gamma_h in float64: one gamma for all heads, or RetNet's gamma_h = 1 - 2^(-5-h)."""
    if cfg.gamma_heads == "retnet":
        return torch.log(1 - 2.0 ** (-5 - torch.arange(cfg.n_heads, dtype=torch.float64)))
    return torch.full((cfg.n_heads,), math.log(cfg.gamma), dtype=torch.float64)


class FixedDecay(nn.Module):
    """log a = log gamma_h at every token, (B, T, H). Kept in float64 outside the module's buffers and cast
    to each input's dtype and device when used, so a float64 model computes gamma exactly (a float32
    buffer cast up would carry float32 rounding)."""

    def __init__(self, cfg: MixerConfig):
        super().__init__()
        self.log_gamma = fixed_log_gamma(cfg)
        self._as: dict[tuple, Tensor] = {}

    def forward(self, u: Tensor) -> Tensor:
        key = (u.dtype, u.device)
        if key not in self._as:
            self._as[key] = self.log_gamma.to(dtype=u.dtype, device=u.device)
        return self._as[key].expand(*u.shape[:2], -1)


class SigmoidGate(nn.Module):
    """log a = logsigmoid(W u + c) / tau (GLA's temperature tau); c puts a at zero input evenly in
    [gate_min, gate_max] across heads (or channels); W starts small."""

    def __init__(self, cfg: MixerConfig, d_model: int, width: int, input_dependent: bool):
        super().__init__()
        self.tau = cfg.gate_temperature
        bias = logit(torch.linspace(cfg.gate_min, cfg.gate_max, width) ** self.tau)
        self.proj = projection(d_model, width, cfg.gate_rank) if input_dependent else None
        if self.proj is None:
            self.logit = no_weight_decay(nn.Parameter(bias))
            return
        with torch.no_grad():
            last_linear(self.proj).weight.mul_(0.1)
            last_linear(self.proj).bias.copy_(bias)

    def forward(self, u: Tensor) -> tuple[Tensor, None]:
        z = self.proj(u) if self.proj is not None else self.logit.expand(*u.shape[:-1], -1)
        return F.logsigmoid(z) / self.tau, None


class ForgetGate(nn.Module):
    """log f = logsigmoid(W u + c), the mLSTM forget gate: W = 0 and c evenly spaced in logit space
    from logit(gate_min) to logit(gate_max) at init (xLSTM: 3 to 6)."""

    def __init__(self, cfg: MixerConfig, d_model: int, width: int, input_dependent: bool):
        super().__init__()
        p = torch.tensor([cfg.gate_min, cfg.gate_max], dtype=torch.float64)
        lo, hi = logit(p).tolist()
        self.bias = no_weight_decay(nn.Parameter(torch.linspace(lo, hi, width)))
        self.proj = nn.Linear(d_model, width, bias=False) if input_dependent else None
        if self.proj is not None:
            nn.init.zeros_(self.proj.weight)

    def forward(self, u: Tensor) -> tuple[Tensor, None]:
        z = self.bias if self.proj is None else self.proj(u) + self.bias
        return F.logsigmoid(z.expand(*u.shape[:-1], -1)), None


class MambaGate(nn.Module):
    """log a = -Delta_t * r with Delta_t = softplus(W u + dt_bias) and rate r = exp(A_log) (Mamba).

    Delta at zero input is log-uniform in [dt_min, dt_max] per head; r is uniform in
    [rate_min, rate_max] per head (Mamba-2), or 1..n per state channel (rate_init = s4d_real, S6).
    """

    def __init__(self, cfg: MixerConfig, d_model: int, n: int, diagonal: bool, input_dependent: bool):
        super().__init__()
        H = cfg.n_heads
        log_dt = torch.empty(H).uniform_(math.log(cfg.dt_min), math.log(cfg.dt_max))
        self.dt_bias = no_weight_decay(nn.Parameter(inverse_softplus(log_dt.exp().clamp_min(1e-4))))
        self.A_log = no_weight_decay(nn.Parameter(torch.log(self._rates(cfg, H, n, diagonal))))
        self.proj = projection(d_model, H, cfg.gate_rank, bias=False) if input_dependent else None
        self.diagonal = diagonal

    @staticmethod
    def _rates(cfg: MixerConfig, H: int, n: int, diagonal: bool) -> Tensor:
        if cfg.rate_init == "s4d_real":
            return torch.arange(1, n + 1, dtype=torch.float32).repeat(H, 1)
        return torch.empty((H, n) if diagonal else (H,)).uniform_(cfg.rate_min, cfg.rate_max)

    def forward(self, u: Tensor) -> tuple[Tensor, Tensor]:
        z = self.proj(u) if self.proj is not None else u.new_zeros(*u.shape[:-1], self.dt_bias.shape[0])
        dt = F.softplus(z + self.dt_bias)  # (B, T, H)
        rate = torch.exp(self.A_log)
        return (-dt[..., None] * rate if self.diagonal else -dt * rate), dt


class InputGate(nn.Module):
    """log i = w^T u + c_h, the mLSTM exponential input gate: w = 0, c ~ N(0, 0.1^2) at init (xLSTM)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.proj = nn.Linear(d_model, n_heads)
        with torch.no_grad():
            self.proj.weight.zero_()
            self.proj.bias.normal_(0.0, 0.1)

    def forward(self, u: Tensor) -> Tensor:
        return self.proj(u)


def make_gate(cfg: MixerConfig, d_model: int, n: int, diagonal: bool, input_dependent: bool) -> nn.Module:
    """The cfg.gate module of a learned a_t: one per head, or per state channel when `diagonal`; from the
    token when `input_dependent`, else a learned constant."""
    width = cfg.n_heads * (n if diagonal else 1)
    if cfg.gate == "mamba":
        return MambaGate(cfg, d_model, n, diagonal, input_dependent)
    gate = SigmoidGate if cfg.gate == "sigmoid" else ForgetGate
    return gate(cfg, d_model, width, input_dependent)


class RotationGate(nn.Module):
    """A scalar gate a_t (cfg.gate, input-dependent) and the angles theta_t = W u_t + c of a rotation of each pair
    of state channels, per head: W starts small and c at 0, so A_t starts near a_t I."""

    def __init__(self, cfg: MixerConfig, d_model: int, n: int):
        super().__init__()
        self.gate = make_gate(cfg, d_model, n, diagonal=False, input_dependent=True)
        self.angle = nn.Linear(d_model, cfg.n_heads * (n // 2))
        with torch.no_grad():
            self.angle.weight.mul_(0.1)
            self.angle.bias.zero_()

    def forward(self, u: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.gate(u)

    def angles(self, u: Tensor, n_heads: int) -> Tensor:
        """(B, T, H, n/2) angles theta_t."""
        return self.angle(u).view(*u.shape[:2], n_heads, -1)

