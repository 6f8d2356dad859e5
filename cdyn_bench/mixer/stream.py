"""Continuing a sequence: what a mixer keeps between calls, and the rows of new tokens against a KV cache.

A linear readout (phi = identity with a state normaliser) keeps a finite State (components.State),
stepped by the recurrent or chunked form. Any other readout keeps every past impulse b_j and value
v_j: the KV cache. With a scalar A (and the mLSTM input gate) a past impulse only changes by the
scalar product a_i ... a_{j+1}, so the cache stores the log offset c_j = sum_{t<=j} log a_t - log i_j
of each key beside the running sum C_i = sum_{t<=i} log a_t, and the score of query i against key j
is (q_i . b_j) exp(C_i - c_j). Diagonal and Householder A would transport every cached key at every
step; no preset pairs them with a nonlinear readout, and streaming them is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cdyn_bench.mixer.components import Evolution, State
from cdyn_bench.mixer.evolutions import EVOLUTIONS
from cdyn_bench.mixer.forms import readout


@dataclass
class KVCache:
    """The past of a nonlinear readout: impulses b (B, L, H, n), values v (B, L, H, dv), and with a scalar
    A or an input gate the keys' log offsets c_j (B, L, H) and the running log decay C (B, H)."""

    b: Tensor
    v: Tensor
    offset: Tensor | None = None
    log_decay: Tensor | None = None


@dataclass
class Cache:
    """What one mixer keeps after a prefix: tokens seen (positions for rotary embeddings), the short
    convolution's last conv_size - 1 projected inputs (B, k-1, width), the cumulative angles of a rotating A
    (B, H, n/2; cdyn_bench.mixer.frame), and a State or a KVCache.
    scaled: whether the State's log scale m carries information (eta in STABILISED; else it is 0)."""

    position: int = 0
    conv: Tensor | None = None
    angle: Tensor | None = None
    state: State | None = None
    kv: KVCache | None = None
    scaled: bool = False

    def floats(self) -> int:
        """Floats held per sequence: what inference needs to continue (the measured state or KV cache)."""
        state = [self.state.S, self.state.m if self.scaled else None] if self.state is not None else []
        parts = [self.conv, self.angle, *state, *(vars(self.kv).values() if self.kv else ())]
        return sum(t[0].numel() for t in parts if t is not None)


def extend(kv: KVCache | None, b: Tensor, v: Tensor, evolution: Evolution) -> KVCache:
    """The cache after appending the new tokens' impulses, values and log offsets."""
    if evolution.diagonal is not None or evolution.householder:
        scalar = [name for name, kind in EVOLUTIONS.items() if kind.factor != "diagonal" and not kind.householder]
        raise ValueError("streaming a nonlinear readout keeps every past key; with a diagonal or Householder A "
                         "each would be transported at every step, which is not implemented: use A = "
                         f"{', '.join(scalar[:-1])} or {scalar[-1]}, or phi = identity")
    b, v = (torch.cat([old, x], 1) for old, x in ((kv.b, b), (kv.v, v))) if kv is not None else (b, v)
    if evolution.scalar is None and evolution.log_i is None:
        return KVCache(b, v)
    B, T, H = evolution.log_i.shape if evolution.scalar is None else evolution.scalar.shape
    start = kv.log_decay if kv is not None else b.new_zeros(B, H)
    steps = evolution.scalar if evolution.scalar is not None else b.new_zeros(B, T, H)
    C = start[:, None] + steps.cumsum(1)  # (B, T, H)
    offset = C - evolution.log_i if evolution.log_i is not None else C
    return KVCache(b, v, torch.cat([kv.offset, offset], 1) if kv is not None else offset, C[:, -1])


def cached_rows(q: Tensor, b: Tensor, v: Tensor, evolution: Evolution, phi: str, eta: str,
                eta_learned: Tensor | None, kv: KVCache | None) -> tuple[Tensor, KVCache]:
    """y (B, T, H, dv) of T new tokens against the cached past and themselves, and the extended cache."""
    T = q.shape[1]
    new = extend(kv, b, v, evolution)
    L = new.b.shape[1]
    scores = torch.einsum("bihn,bjhn->bhij", q, new.b)
    if new.offset is not None:
        # C_i of the new rows: their own offsets plus the input gate the offset took off.
        rows = new.offset[:, L - T:] + (evolution.log_i if evolution.log_i is not None else 0.0)
        scores = scores * torch.exp(rows.transpose(1, 2)[..., None] - new.offset.transpose(1, 2)[:, :, None, :])
    causal = torch.ones(T, L, dtype=torch.bool, device=q.device).tril(L - T)
    alpha = readout(scores, causal, phi, eta, eta_learned)
    return torch.einsum("bhij,bjhd->bihd", alpha, new.v), new
