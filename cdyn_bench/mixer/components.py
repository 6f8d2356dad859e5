"""The pluggable pieces of the mixer, keyed by their names in cdyn_bench.choices: psi, phi, the learned eta's f;
A_t in log space (what a kind of A, cdyn_bench.mixer.evolutions, produces); the state and its helpers.

The normaliser helpers serve the state forms (recurrent, chunked): with eta = sum or mlstm the
state carries one extra value column of ones, so that y_i and sum_j alpha~_ij come out together,
and a per-row log scale m_i that cancels in the ratio (see `STABILISED`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from cdyn_bench.choices import STABILISED


def _elu1(x: Tensor) -> Tensor:
    return F.elu(x) + 1.0


FEATURE_MAPS = {
    "none": lambda x: x,
    "elu1": _elu1,
    "relu": F.relu,
    "exp": torch.exp,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "silu": F.silu,
}

PHIS = {
    "identity": lambda x: x,
    "exp": torch.exp,
    "softplus": F.softplus,
    "relu": F.relu,
    "elu1": _elu1,
    "sigmoid": torch.sigmoid,
}

# f in the learned normaliser eta_i = exp(f(w^T u_i + o_h)).
ETA_FS = {"exp": torch.exp, "elu": F.elu, "softplus": F.softplus, "sigmoid": torch.sigmoid}


@dataclass
class Evolution:
    """A_t = exp(log_a_t) * A'_t for every step and head, and the log input gate on b_j.

    log_a: None for no factor; (B, T, H) for a scalar a_t*I; (B, T, H, n) for Diag(a_t).
    beta, direction: (B, T, H) and unit (B, T, H, n) vectors k_t of a Householder part
        A'_t = I - beta_t k_t k_t^T (None when A'_t = I).
    log_i: (B, T, H) log of an input gate i_j multiplying b_j (mLSTM); it is kept in log space
        beside the decays so that normalised forms can subtract a running maximum.
    angles: (B, T, H, n/2) angles theta_t of a rotation part A'_t = Rot(theta_t), each pair of channels
        (2p, 2p+1) turned by its own angle. The mixer takes it out before any form by a change of frame
        (cdyn_bench.mixer.frame): the forms compute the rest. frame: the cumulative angles that took it out.
    """

    log_a: Tensor | None = None
    beta: Tensor | None = None
    direction: Tensor | None = None
    log_i: Tensor | None = None
    angles: Tensor | None = None
    frame: Tensor | None = None

    @property
    def scalar(self) -> Tensor | None:
        """(B, T, H) log of the scalar factor, or None."""
        return self.log_a if self.log_a is not None and self.log_a.dim() == 3 else None

    @property
    def diagonal(self) -> Tensor | None:
        """(B, T, H, n) log of the diagonal factors, or None."""
        return self.log_a if self.log_a is not None and self.log_a.dim() == 4 else None

    @property
    def householder(self) -> bool:
        return self.beta is not None


class State(NamedTuple):
    """The finite state of a linear-readout mixer after a prefix, at log scale m: the state is exp(m) S.

    S: (B, H, n, dv) sum_j A_i...A_{j+1} b_j v_j^T, with one more value column, the causal sum
    z = sum_j A_i...A_{j+1} b_j, when eta is in STABILISED; m: (B, H), zero unless eta is in
    STABILISED. The convention of fla's naive references (initial_state / output_final_state) and
    of Mamba's ssd_minimal (initial_states, final state).
    """

    S: Tensor
    m: Tensor


def segsum(log_a: Tensor) -> Tensor:
    """(..., T) -> (..., T, T) with [i, j] = sum_{t=j+1..i} log_a[t] for j <= i and -inf above."""
    T = log_a.shape[-1]
    x = log_a[..., None, :].expand(*log_a.shape, T).transpose(-1, -2)  # [i, j] = log_a[i]
    below = torch.tril(torch.ones(T, T, dtype=torch.bool, device=log_a.device), diagonal=-1)
    sums = torch.cumsum(torch.where(below, x, 0.0), dim=-2)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=log_a.device))
    return sums.masked_fill_(~causal, float("-inf"))  # in place: cumsum's backward does not read its output


def divide_or_zero(num: Tensor, den: Tensor) -> Tensor:
    """num / den, and 0 where den == 0: a row whose coefficients sum to zero (all zero, as phi = relu
    gives when every score is negative) gets zero coefficients, not 0/0, in every form."""
    zero = den == 0
    return torch.where(zero, 0.0, num / torch.where(zero, 1.0, den))


def augment(v: Tensor, eta: str) -> Tensor:
    """v (..., dv) with a column of ones appended when eta needs the causal sum of coefficients."""
    return torch.cat([v, torch.ones_like(v[..., :1])], dim=-1) if eta in STABILISED else v
