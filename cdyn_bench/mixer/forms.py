"""Forms of computing the coefficient-dynamics mixer; all take and return the (B, T, H, D) layout.

Every head computes y_i = sum_{j<=i} alpha_ij v_j with

    alpha_ij = phi(q_i^T A_i A_{i-1} ... A_{j+1} b_j) / eta_i.

`coefficients` writes this definition down for every (i, j); `quadratic` multiplies it with v.
For scalar and diagonal A_t the product A_i...A_{j+1} is exp(sum_{t=j+1..i} log a_t), taken as a
segment sum in log space so that no cumulative product over the whole sequence is formed.
With phi = exp and eta = causal sum the coefficients are a softmax over the transported scores,
computed after subtracting the row maximum; with eta = 1 an overflow of exp is the model's own
behaviour and is not clamped.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cdyn_bench.mixer.components import READOUTS, Evolution


def segsum(log_a: Tensor) -> Tensor:
    """(..., T) -> (..., T, T) with [i, j] = sum_{t=j+1..i} log_a[t] for j <= i and -inf above."""
    T = log_a.shape[-1]
    x = log_a[..., None, :].expand(*log_a.shape, T).transpose(-1, -2)  # [i, j] = log_a[i]
    below = torch.tril(torch.ones(T, T, dtype=torch.bool, device=log_a.device), diagonal=-1)
    sums = torch.cumsum(x.masked_fill(~below, 0.0), dim=-2)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=log_a.device))
    return sums.masked_fill(~causal, float("-inf"))


def transported_scores(q: Tensor, b: Tensor, evolution: Evolution) -> Tensor:
    """(B, H, T, T) scores q_i^T A_i...A_{j+1} b_j for j <= i; -inf above the diagonal.

    q, b: (B, T, H, n).
    """
    q, b = q.transpose(1, 2), b.transpose(1, 2)  # (B, H, T, n)
    T = q.shape[2]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=q.device))
    log_a = evolution.log_a
    if log_a is None:
        scores = q @ b.transpose(-1, -2)
    elif log_a.dim() == 3:
        scores = (q @ b.transpose(-1, -2)) * torch.exp(segsum(log_a.transpose(1, 2)))
    else:
        decay = segsum(log_a.permute(0, 2, 3, 1)).permute(0, 1, 3, 4, 2)  # (B, H, T, T, n)
        scores = torch.einsum("bhid,bhjd,bhijd->bhij", q, b, torch.exp(decay))
    return scores.masked_fill(~causal, float("-inf"))


def coefficients(q: Tensor, b: Tensor, evolution: Evolution, phi: str, eta: str,
                 eta_learned: Tensor | None = None) -> Tensor:
    """(B, H, T, T) coefficients alpha_ij, zero above the diagonal.

    eta_learned: (B, T, H) values of the learned normaliser, used when eta = 'learned'.
    """
    scores = transported_scores(q, b, evolution)
    T = scores.shape[-1]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=scores.device))
    if phi == "exp" and eta == "sum":
        return torch.softmax(scores, dim=-1)
    alpha = READOUTS[phi](scores.masked_fill(~causal, 0.0)).masked_fill(~causal, 0.0)
    if eta == "one":
        return alpha
    if eta == "sum":
        return alpha / alpha.sum(-1, keepdim=True)
    if eta == "abs_sum":
        return alpha / alpha.abs().sum(-1, keepdim=True)
    return alpha / eta_learned.transpose(1, 2)[..., None]


def quadratic(q: Tensor, b: Tensor, v: Tensor, evolution: Evolution, phi: str, eta: str,
              eta_learned: Tensor | None = None) -> Tensor:
    """y (B, T, H, Dv) = alpha v with alpha materialised: every phi and eta, O(T^2) per head."""
    alpha = coefficients(q, b, evolution, phi, eta, eta_learned)
    return (alpha @ v.transpose(1, 2)).transpose(1, 2)


FORMS = {"quadratic": quadratic}
