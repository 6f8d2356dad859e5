"""The chunked form: quadratic inside chunks of C tokens, the state passed between chunks (phi = identity).

In chunk c with local steps s <= i, cs_i the chunk-local cumulative scalar log decay, li_s the
log input gate, and D the diagonal part of A (G_i its cumulative log):

    intra   y_i  = sum_{s<=i} exp(cs_i - cs_s + li_s) (q_i^T exp(G_i - G_s) b_s) v_s
    inter   y_i += exp(cs_i) (exp(G_i) q_i)^T S_in
    state   S_out = exp(cs_C) exp(G_C) S_in + sum_s exp(cs_C - cs_s + li_s) (exp(G_C - G_s) b_s) v_s^T.

The intra part is a masked matrix product for scalar A, the WY form for Householder A
(householder.py), and for diagonal A a step-by-step scan inside all chunks at once (pairwise
decays exp(G_i - G_s) per channel would cost C times the state update). The states entering the
chunks come from a parallel (Hillis-Steele) scan over chunks for scalar and diagonal A, and from a
loop over chunks for Householder A. All decays are differences of log sums inside a chunk or
products of per-chunk factors <= 1, so no cumulative product over the sequence is formed.
With eta = sum or mlstm every row i is divided by exp(m_i), m_i the largest log weight reaching it;
m cancels in the normalised output, so it is detached, and growth (gamma > 1, the exp input gate)
does not overflow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cdyn_bench.choices import STABILISED
from cdyn_bench.mixer.components import Evolution, State, augment, segsum
from cdyn_bench.mixer.householder import gate_transport, householder_intra
from cdyn_bench.mixer.normalisers import ETAS


def to_chunks(x: Tensor, C: int) -> Tensor:
    """(B, T, H, ...) -> (B, H, N, C, ...), zero-padded at the end to N*C steps."""
    x = x.movedim(1, 2)
    pad = (-x.shape[2]) % C
    if pad:
        x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, pad))
    return x.reshape(*x.shape[:2], -1, C, *x.shape[3:])


def from_chunks(x: Tensor, T: int) -> Tensor:
    """(B, H, N, C, ...) -> (B, T, H, ...)."""
    return x.flatten(2, 3)[:, :, :T].movedim(2, 1)


def chunk_log_weights(evolution: Evolution, q: Tensor, C: int, weights: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
    """Per chunk: ls (B, H, N, C) scalar log decays, li (B, H, N, C) log input gates, and
    lw (B, H, N, C, C) = cs_i - cs_s + li_s for s <= i (-inf above the diagonal). lw is None when A has no
    scalar factor and there is no input gate (every lw_is would be 0), and when not asked for (`weights`)."""
    if evolution.scalar is None and evolution.log_i is None:
        zeros = to_chunks(q.new_zeros(q.shape[:3]), C)
        return zeros, zeros, None
    ls = evolution.scalar if evolution.scalar is not None else q.new_zeros(q.shape[:3])
    li = evolution.log_i if evolution.log_i is not None else q.new_zeros(q.shape[:3])
    ls, li = to_chunks(ls, C), to_chunks(li, C)
    if not weights:
        return ls, li, None
    return ls, li, (segsum(ls) + li[..., None, :] if evolution.log_i is not None else segsum(ls))


def input_weights(lw: Tensor | None, rho: Tensor, stabilise: bool) -> Tensor:
    """wb (B, H, N, C, C) = exp(lw_is - rho_i), zero above the diagonal (rho = 0 unless `stabilise`); without
    lw (no decay, no input gate, so rho = 0) the causal 0/1 mask itself: the same numbers, bit for bit, as
    exp(0) = 1 and exp(-inf) = 0."""
    if lw is not None:
        return torch.exp(lw - rho[..., None]) if stabilise else torch.exp(lw)
    C = rho.shape[-1]
    return torch.ones(C, C, dtype=rho.dtype, device=rho.device).tril().expand(*rho.shape, C).contiguous()


def scalar_intra(q: Tensor, b: Tensor, v: Tensor, wb: Tensor, state: bool = True) -> tuple[Tensor, ...]:
    """(y_intra, q_in, u, log_carry) of every chunk for A = a_t I: (q b^T * w) v inside the chunk;
    without `state`, only y_intra (the rest None)."""
    y_intra = ((q @ b.transpose(-1, -2)) * wb) @ v
    if not state:
        return y_intra, None, None, None
    return y_intra, q, torch.einsum("bhcs,bhcsn,bhcsd->bhcnd", wb[..., -1, :], b, v), None


def diagonal_intra(q: Tensor, b: Tensor, v: Tensor, log_d: Tensor, ls: Tensor, li: Tensor, rho: Tensor,
                   stabilise: bool, state: bool = True) -> tuple[Tensor, ...]:
    """(y_intra, q_in, u, log_carry) of every chunk for A = a_t Diag(d_t); without `state`, only y_intra.

    Inside the chunk the state is stepped S_i = a_i D_i S_{i-1} + i_i b_i v_i^T (at row scales rho)
    for all chunks at once: pairwise per-channel decays would cost C times more. The steps read
    their slices through unbind, whose backward writes one gradient tensor, not one per step.
    """
    rho_prev = torch.cat([torch.full_like(rho[..., :1], float("-inf") if stabilise else 0.0), rho[..., :-1]], -1)
    decay = torch.exp(ls + rho_prev - rho)[..., None] * torch.exp(log_d)  # (B, H, N, C, n)
    gain = torch.exp(li - rho)  # (B, H, N, C)
    S = q.new_zeros(*q.shape[:3], q.shape[-1], v.shape[-1])  # (B, H, N, n, dv)
    ys = []
    for d_i, g_i, b_i, v_i, q_i in zip(decay.unbind(-2), gain.unbind(-1), b.unbind(-2), v.unbind(-2), q.unbind(-2)):
        S = d_i[..., None] * S + (g_i[..., None] * b_i)[..., None] * v_i[..., None, :]
        ys.append((q_i[..., None, :] @ S).squeeze(-2))
    if not state:
        return torch.stack(ys, dim=-2), None, None, None
    G = log_d.cumsum(-2)
    return torch.stack(ys, dim=-2), q * torch.exp(G), S, G[..., -1, :]


def combine(y_intra: Tensor, q_in: Tensor, s_in: Tensor, m_in: Tensor, cs: Tensor,
            rho: Tensor, stabilise: bool) -> tuple[Tensor, Tensor]:
    """y_i = intra part (at scale rho_i) + exp(cs_i) q_in_i^T S_in (S_in at scale m_in), at row scale m_i."""
    inter_log = m_in[..., None] + cs
    m = torch.maximum(inter_log, rho).detach() if stabilise else torch.zeros_like(cs)
    y = torch.exp(rho - m)[..., None] * y_intra + torch.exp(inter_log - m)[..., None] * (q_in @ s_in)
    return y, m


def shifted(x: Tensor, step: int, fill: float) -> Tensor:
    """x moved `step` chunks later along dim 2, the first `step` chunks set to `fill`."""
    head = torch.full_like(x[:, :, :step], fill)
    return torch.cat([head, x[:, :, :-step]], dim=2)


def prepend(x: Tensor, first: Tensor) -> Tensor:
    """x (B, H, N, ...) with `first` (B, H, ...) as a chunk before the first."""
    return torch.cat([first[:, :, None], x], dim=2)


def entering_states(u: Tensor, total: Tensor, log_carry: Tensor | None, rho_end: Tensor,
                    stabilise: bool, initial: State | None = None) -> tuple[Tensor, Tensor, State]:
    """States entering each chunk (B, H, N, n, dv), their log scales (B, H, N), and the final State.

    A Hillis-Steele scan over chunks of S_c = exp(total_c) exp(log_carry_c) S_{c-1} + u_c, where u_c is
    chunk c's own state at scale rho_end_c; log2(N) steps, every combined decay <= 1 for gates. An
    initial state enters as a chunk before the first whose own state it is, with no decay of its own.
    """
    empty = float("-inf") if stabilise else 0.0
    d = log_carry if log_carry is not None else torch.zeros_like(total)[..., None]
    if initial is not None:
        u, rho_end = prepend(u, initial.S), prepend(rho_end, initial.m)
        total, d = prepend(total, torch.zeros_like(total[:, :, 0])), prepend(d, torch.zeros_like(d[:, :, 0]))
    s, a, m = u, total, rho_end
    step = 1
    while step < u.shape[2]:
        s_prev, a_prev, d_prev = shifted(s, step, 0.0), shifted(a, step, 0.0), shifted(d, step, 0.0)
        m_prev = shifted(m, step, empty)
        m_new = torch.maximum(m_prev + a, m).detach() if stabilise else m
        decay = torch.exp(m_prev + a - m_new)[..., None] * torch.exp(d)  # (B, H, N, n)
        s = decay[..., None] * s_prev + torch.exp(m - m_new)[..., None, None] * s
        a, d, m = a + a_prev, d + d_prev, m_new
        step *= 2
    start = 1 if initial is not None else 0
    return shifted(s, 1, 0.0)[:, :, start:], shifted(m, 1, empty)[:, :, start:], State(s[:, :, -1], m[:, :, -1])


def scan_chunks(y_intra: Tensor, q_in: Tensor, u: Tensor, carry: Tensor, cs: Tensor, rho: Tensor,
                stabilise: bool, initial: State | None = None) -> tuple[Tensor, Tensor, State]:
    """Outputs and row scales of every chunk, carrying the state S <- exp(cs_C) carry S + u chunk by chunk
    from `initial` (default empty); and the final State."""
    B, H, N, _, dv = y_intra.shape
    s = initial.S if initial is not None else y_intra.new_zeros(B, H, q_in.shape[-1], dv)
    m_in = initial.m if initial is not None else y_intra.new_full((B, H), float("-inf") if stabilise else 0.0)
    ys, ms = [], []
    for c in range(N):
        y, m = combine(y_intra[:, :, c], q_in[:, :, c], s, m_in, cs[:, :, c], rho[:, :, c], stabilise)
        ys.append(y)
        ms.append(m)
        total, rho_end = cs[:, :, c, -1], rho[:, :, c, -1]
        m_out = torch.maximum(m_in + total, rho_end).detach() if stabilise else m_in
        s = (torch.exp(m_in + total - m_out)[..., None, None] * (carry[:, :, c] @ s)
             + torch.exp(rho_end - m_out)[..., None, None] * u[:, :, c])
        m_in = m_out
    return torch.stack(ys, 2), torch.stack(ms, 2), State(s, m_in)


def chunked(q: Tensor, b: Tensor, v: Tensor, evolution: Evolution, phi: str, eta: str,
            eta_learned: Tensor | None = None, chunk_size: int = 64, initial: State | None = None,
            return_state: bool = False) -> Tensor | tuple[Tensor, State]:
    """y (B, T, H, dv) computed chunk by chunk: phi = identity, eta in one, sum, learned, mlstm; O(T C).

    initial: the state to continue from (State; default empty); with return_state, (y, final State).
    """
    if evolution.householder and evolution.beta.dim() == 4:
        return householder_product(q, b, v, evolution, phi, eta, eta_learned, chunk_size, initial, return_state)
    T, C = q.shape[1], chunk_size
    stabilise = eta in STABILISED
    # The diagonal form steps inside the chunk and needs the pairwise log weights only for the row scales.
    ls, li, lw = chunk_log_weights(evolution, q, C, weights=evolution.diagonal is None or stabilise)
    cs = ls.cumsum(-1)
    # A row that no input reaches (every lw_is -inf: the sub-steps before a token's last, householder_product)
    # gets row scale 0, so that no exp(-inf - -inf) forms; its output is zero at any scale.
    rho = lw.amax(-1).detach().nan_to_num(neginf=0.0) if stabilise and lw is not None else torch.zeros_like(cs)
    qc, bc, vc = to_chunks(q, C), to_chunks(b, C), to_chunks(augment(v, eta), C)
    # One chunk with no state entering it and none asked for: its output is the intra part at row
    # scale rho (what combine gives with an empty state), and the state parts are not formed.
    state = qc.shape[2] > 1 or initial is not None or return_state

    def output(y: Tensor, m: Tensor, final: State | None = None) -> Tensor | tuple[Tensor, State]:
        y = ETAS[eta].state(from_chunks(y, T), from_chunks(m, T), eta_learned)
        return (y, final) if return_state else y

    if evolution.householder:
        k, beta = to_chunks(evolution.direction, C), to_chunks(evolution.beta, C)
        wb = input_weights(lw, rho, stabilise)
        # Without decays the transport g_ts is the causal mask too (cs = rho = 0), and wb is it.
        g = gate_transport(cs, rho if stabilise else None) if lw is not None else wb
        y_intra, q_in, u, carry = householder_intra(qc, bc, vc, k, beta, g, wb, state)
        if not state:
            return output(y_intra, rho)
        return output(*scan_chunks(y_intra, q_in, u, carry, cs, rho, stabilise, initial))
    if evolution.diagonal is not None:
        log_d = to_chunks(evolution.diagonal, C)
        y_intra, q_in, u, log_carry = diagonal_intra(qc, bc, vc, log_d, ls, li, rho, stabilise, state)
    else:
        y_intra, q_in, u, log_carry = scalar_intra(qc, bc, vc, input_weights(lw, rho, stabilise), state)
    if not state:
        return output(y_intra, rho)
    s_in, m_in, final = entering_states(u, cs[..., -1], log_carry, rho[..., -1], stabilise, initial)
    y, m = combine(y_intra, q_in, s_in, m_in, cs, rho, stabilise)
    return output(y, m, final)


def householder_product(q: Tensor, b: Tensor, v: Tensor, evolution: Evolution, phi: str, eta: str,
                        eta_learned: Tensor | None, chunk_size: int, initial: State | None,
                        return_state: bool) -> Tensor | tuple[Tensor, State]:
    """The chunked form of A_t = a_t H_{t,h} ... H_{t,1}, a product of h Householders per token (beta (B, T, H, h),
    direction (B, T, H, h, n)), as h sub-steps of one Householder each (DeltaProduct's construction): sub-step m
    of token t applies H_{t,m}, the first also a_t; only the last takes the input b_t v_t^T (the input gate
    there, -inf log gate on the others, so no row scale sees them) and reads q_t. Chunks hold whole tokens:
    chunk_size sub-steps, rounded up to a multiple of h.
    """
    B, T, H, h = evolution.beta.shape

    def spread(x: Tensor, last: bool = True, fill: float = 0.0) -> Tensor:
        """(B, T, H, ...) -> (B, T h, H, ...): x at each token's last (or first) sub-step, `fill` at the others."""
        others = [torch.full_like(x, fill)] * (h - 1)
        return torch.stack(others + [x] if last else [x] + others, dim=2).flatten(1, 2)

    log_i = evolution.log_i if evolution.log_i is not None else q.new_zeros(B, T, H)
    steps = Evolution(
        log_a=spread(evolution.scalar, last=False) if evolution.scalar is not None else None,
        beta=evolution.beta.movedim(3, 2).flatten(1, 2), direction=evolution.direction.movedim(3, 2).flatten(1, 2),
        log_i=spread(log_i, fill=float("-inf")),
    )
    learned = spread(eta_learned, fill=1.0) if eta_learned is not None else None
    out = chunked(spread(q), spread(b), spread(v), steps, phi, eta, learned, -(-chunk_size // h) * h, initial,
                  return_state)
    y, final = out if return_state else (out, None)
    y = y[:, h - 1::h]
    return (y, final) if return_state else y
