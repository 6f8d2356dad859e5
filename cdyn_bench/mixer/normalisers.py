"""The normaliser eta_i: one object per value of model.mixer.eta, holding every way the framework computes it.

Each says how it divides the coefficients phi(score_ij) of a row in the quadratic forms (`coefficients`),
how it divides the state forms' output (`state`: y carries exp(-m_i) sum_j alpha~_ij [v_j, 1], the last
column the causal sum when `stabilised`), and log |eta_i| from the transported scores for introspection
(`log`: in log space, finite where exp(score) overflows). The torch-free facts (which are stabilised, which
the state forms compute) are the tuples in cdyn_bench.choices, which the config checks read; a test checks
that this table has the same names.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cdyn_bench.mixer.components import PHIS, divide_or_zero


class Normaliser:
    """eta_i = 1: the coefficients are the phi values themselves."""

    def coefficients(self, alpha: Tensor, m: Tensor | None, learned: Tensor | None) -> Tensor:
        """alpha (B, H, T, L): phi values, zero off the causal set; m (B, H, T): the scores' log scale or None;
        learned (B, T, H): the learned eta's values or None."""
        return alpha

    def state(self, y: Tensor, m: Tensor, learned: Tensor | None) -> Tensor:
        """y_i / eta_i from the state forms' y (B, T, H, dv [+1]) and its log scale m (B, T, H)."""
        return y

    def log(self, scores: Tensor, phi: str, learned: Tensor | None) -> Tensor:
        """(B, H, T) log |eta_i| from the transported scores (B, H, T, T), -inf above the diagonal."""
        return torch.zeros_like(scores[..., 0])


class Learned(Normaliser):
    """eta_i = exp(f(w^T u_i + o_h)), computed by the layer from its input; it does not see the scores."""

    def coefficients(self, alpha, m, learned):
        return alpha / learned.transpose(1, 2)[..., None]

    def state(self, y, m, learned):
        return y / learned[..., None]

    def log(self, scores, phi, learned):
        return torch.log(learned.transpose(1, 2))


class Sum(Normaliser):
    """eta_i = sum_j phi(score_ij), the causal sum (with phi = exp: softmax); a row summing to zero gets zeros.
    A signed phi (identity) can make the sum cross zero: the model's own behaviour, not clamped."""

    absolute = False

    def coefficients(self, alpha, m, learned):
        return divide_or_zero(alpha, (alpha.abs() if self.absolute else alpha).sum(-1, keepdim=True))

    def state(self, y, m, learned):
        return divide_or_zero(y[..., :-1], y[..., -1:])

    def log(self, scores, phi, learned):
        """phi = exp sums in log space (log-sum-exp), so eta_i is finite where exp(score) overflows;
        -inf where a sum is exactly zero."""
        if phi == "exp":
            return torch.logsumexp(scores, dim=-1)
        causal = torch.tril(torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device))
        raw = PHIS[phi](scores.masked_fill(~causal, 0.0)).masked_fill(~causal, 0.0)
        return torch.log((raw.abs() if self.absolute else raw).sum(-1).abs())


class AbsSum(Sum):
    """eta_i = sum_j |phi(score_ij)|: never crosses zero (quadratic forms only)."""

    absolute = True


class MLSTM(Sum):
    """eta_i = max(|sum_j phi(score_ij)|, 1) (xLSTM), the floor at the scores' own scale: exp(-m_i) when
    they were divided by exp(m_i)."""

    def coefficients(self, alpha, m, learned):
        total = alpha.sum(-1, keepdim=True)
        floor = torch.exp(-m)[..., None] if m is not None else torch.ones_like(total)
        return alpha / torch.maximum(total.abs(), floor)

    def state(self, y, m, learned):
        return y[..., :-1] / torch.maximum(y[..., -1:].abs(), torch.exp(-m)[..., None])

    def log(self, scores, phi, learned):
        return super().log(scores, phi, learned).clamp_min(0.0)


ETAS: dict[str, Normaliser] = {"one": Normaliser(), "sum": Sum(), "abs_sum": AbsSum(), "learned": Learned(),
                               "mlstm": MLSTM()}
