"""A first-order linear recurrence h_t = a_t * h_{t-1} + x_t along dim 1, with its gradient written out.

When A_t is scalar or diagonal, every entry of the state S_t = A_t S_{t-1} + b_t v_t^T evolves on its
own, so the state recurrence is this scan. Its gradient is the same recurrence run backwards:

    G_t = dL/dh_t + a_{t+1} G_{t+1},    dL/dx_t = G_t,    dL/da_t = G_t h_{t-1},    dL/dh_{-1} = a_0 G_0.

Stepped under autograd, every op of every step is a graph node, and their backward is most of the cost
at the experiments' sizes; as one autograd Function each direction is one multiply-add per step,
written into a preallocated output, and the rest is a few whole-sequence ops.
"""

from __future__ import annotations

import torch
from torch import Tensor


class LinearScan(torch.autograd.Function):
    """h (B, T, ...) from a (broadcastable to x), x (B, T, ...) and h0 (x without its time dim)."""

    @staticmethod
    def forward(ctx, a: Tensor, x: Tensor, h0: Tensor) -> Tensor:
        h = torch.empty_like(x)
        prev = h0
        for t in range(x.shape[1]):
            prev = torch.addcmul(x[:, t], a[:, t], prev, out=h[:, t])
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor, Tensor | None]:
        a, h, h0 = ctx.saved_tensors
        T = h.shape[1]
        gx = torch.empty_like(h)
        gx[:, T - 1] = grad[:, T - 1]
        for t in range(T - 2, -1, -1):
            torch.addcmul(grad[:, t], a[:, t + 1], gx[:, t + 1], out=gx[:, t])
        ga = gh0 = None
        if ctx.needs_input_grad[0]:
            ga = torch.empty_like(h)  # G_t h_{t-1}, then summed over the dims a was broadcast along
            torch.mul(gx[:, 0], h0, out=ga[:, 0])
            torch.mul(gx[:, 1:], h[:, :-1], out=ga[:, 1:])
            ga = ga.sum_to_size(a.shape)
        if ctx.needs_input_grad[2]:
            gh0 = (a[:, 0] * gx[:, 0]).sum_to_size(h0.shape)
        return ga, gx, gh0


def linear_scan(a: Tensor, x: Tensor, h0: Tensor | None = None) -> Tensor:
    """h_t = a_t * h_{t-1} + x_t for t = 0..T-1 from h_{-1} = h0 (default zero); time is dim 1 of x and a.

    a broadcasts against x (a scalar decay per head is (B, T, H, 1, 1) against a (B, T, H, n, dv) x).
    """
    if h0 is None:
        h0 = x.new_zeros(x.shape[:1] + x.shape[2:])
    return LinearScan.apply(a, x, h0)
