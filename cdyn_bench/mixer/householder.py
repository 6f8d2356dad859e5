"""Householder A_t = a_t (I - beta_t k_t k_t^T) inside one chunk, by the WY / UT representation.

Within a chunk write S_i = a_i S_{i-1} + k_i x_i^T + b_i v_i^T with x_i = -a_i beta_i S_{i-1}^T k_i.
Unrolling S_{i-1} turns the x_t into the solution of a unit lower-triangular system (the UT transform):

    x_t + beta_t sum_{s<t} g_ts (k_t.k_s) x_s = -beta_t [exp(cs_t) S_in^T k_t + sum_{s<t} w_ts (k_t.b_s) v_s],

g_ts = exp(cs_t - cs_s), w_ts = g_ts i_s, cs the chunk-local cumulative log a. x is linear in
(S_in, V), so it splits in two parts:
- from S_in: x = -exp(cs) * W S_in with the gate-free W = (I + tril(diag(beta) K K^T))^{-1} diag(beta) K,
  giving y_i += exp(cs_i) (q_i - sum_{t<=i} (q_i.k_t) W_t)^T S_in and S_out = exp(cs_C) (I - K^T W) S_in + ...;
- from the chunk's own values: x^V = -(I + L)^{-1} R V with L_ts = beta_t (k_t.k_s) g_ts and
  R_ts = beta_t (k_t.b_s) w_ts (s < t); it adds sum_{t<=i} g_it (q_i.k_t) x^V_t + w_it (q_i.b_t) v_t to y_i.
Every row t may be divided by exp(rho_t) (the row scale of the chunked form): then g_ts becomes
exp(cs_t - cs_s + rho_s - rho_t) <= 1 and w_ts becomes exp(lw_ts - rho_t).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _masked(x: Tensor, keep: Tensor) -> Tensor:
    # Out of place: zeroing these products in place changes the rounding of the step (bench_train's digest).
    return x.masked_fill(~keep, 0.0)


def gate_transport(cs: Tensor, rho: Tensor | None) -> Tensor:
    """(B, H, N, C, C) g_ts = exp(cs_t - cs_s + rho_s - rho_t) for s <= t, zero above the diagonal (rho None: 0)."""
    C = cs.shape[-1]
    causal = torch.tril(torch.ones(C, C, dtype=torch.bool, device=cs.device))
    scaled = cs - rho if rho is not None else cs
    log_g = scaled[..., :, None] - scaled[..., None, :]
    return torch.exp(log_g.masked_fill_(~causal, float("-inf")))


def wy_state_part(k: Tensor, beta: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
    """Gate-free WY form: (q_in (B, H, N, C, n), carry (B, H, N, n, n)) with S_in entering row i
    as exp(cs_i) q_in_i^T S_in and leaving the chunk as exp(cs_C) carry S_in."""
    C, n = k.shape[-2:]
    strict = torch.tril(torch.ones(C, C, dtype=torch.bool, device=k.device), diagonal=-1)
    kk = k @ k.transpose(-1, -2)
    w = torch.linalg.solve_triangular(
        _masked(beta[..., None] * kk, strict), beta[..., None] * k, upper=False, unitriangular=True
    )  # (B, H, N, C, n)
    q_in = q - torch.tril(q @ k.transpose(-1, -2)) @ w
    carry = torch.eye(n, dtype=k.dtype, device=k.device) - k.transpose(-1, -2) @ w
    return q_in, carry


def householder_intra(q: Tensor, b: Tensor, v: Tensor, k: Tensor, beta: Tensor, g: Tensor, wb: Tensor,
                      state: bool = True) -> tuple[Tensor, ...]:
    """One chunk's own contribution and its WY transition, for all chunks at once (without `state`,
    the contribution only, the rest None).

    q, b, k: (B, H, N, C, n); v: (B, H, N, C, dv); beta: (B, H, N, C); g: (B, H, N, C, C) the gate
    transport (`gate_transport`) and wb the input weights w_ts / exp(rho_t), both zero above the diagonal.
    Returns y_intra (B, H, N, C, dv) at row scales rho, q_in, the chunk's own state
    u (B, H, N, n, dv) at scale rho_C, and carry (B, H, N, n, n).
    """
    C = q.shape[-2]
    strict = torch.tril(torch.ones(C, C, dtype=torch.bool, device=q.device), diagonal=-1)
    kt = k.transpose(-1, -2)
    rhs = _masked(beta[..., None] * (k @ b.transpose(-1, -2)) * wb, strict) @ v
    lower = _masked(beta[..., None] * (k @ kt) * g, strict)
    x = -torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)  # (B, H, N, C, dv)
    y_intra = ((q @ kt) * g) @ x + ((q @ b.transpose(-1, -2)) * wb) @ v
    if not state:
        return y_intra, None, None, None
    u = kt @ (g[..., -1, :, None] * x) + b.transpose(-1, -2) @ (wb[..., -1, :, None] * v)
    q_in, carry = wy_state_part(k, beta, q)
    return y_intra, q_in, u, carry
