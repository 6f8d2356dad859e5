"""Forms of computing the coefficient-dynamics mixer; all take and return the (B, T, H, D) layout.

Every head computes y_i = sum_{j<=i} alpha_ij v_j with

    alpha_ij = phi(q_i^T A_i A_{i-1} ... A_{j+1} b_j) / eta_i.

`coefficients` writes this definition down for every (i, j) and `reference` multiplies it with v:
the reference, valid for every phi and eta. `quadratic` computes the same O(T^2) numbers with fused
kernels where the knobs allow. With phi = identity the sum collapses into a state
S_i = A_i S_{i-1} + b_i v_i^T (n x dv per head), y_i = S_i^T q_i / eta_i, which `recurrent` steps
through, `chunked` (chunked.py) computes in blocks, and `scan` (A without a Householder part, where
every state entry evolves on its own) computes as one linear scan with its gradient written out (scan.py).

Scalar and diagonal products A_i...A_{j+1} are exp(sum_{t=j+1..i} log a_t), a segment sum in log
space; the mLSTM input gate i_j joins them there as + log i_j. Householder products are applied to
the queries one step at a time. With phi = exp and eta = causal sum the coefficients are a softmax
over the transported scores (row maximum subtracted); with phi = identity and a normalising eta
(sum, abs_sum, mlstm) every row is divided by exp(m_i), m_i its largest log weight, which cancels.
With eta = 1 an overflow is the model's own behaviour and is not clamped; nor is a signed sum
(phi = identity, eta = sum) that crosses zero. A row whose sum is exactly zero gets zero coefficients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cdyn_bench.mixer.chunked import chunked
from cdyn_bench.choices import STABILISED
from cdyn_bench.mixer.components import PHIS, Evolution, State, augment, segsum
from cdyn_bench.mixer.normalisers import ETAS
from cdyn_bench.mixer.scan import linear_scan


def _causal(T: int, device: torch.device) -> Tensor:
    return torch.tril(torch.ones(T, T, dtype=torch.bool, device=device))


def factors(beta: Tensor, direction: Tensor, product: bool) -> list[tuple[Tensor, Tensor]]:
    """The Householder factors (beta_m, k_m) of A'_t = H_h ... H_1 in the order they act on a state (H_1
    first): beta (...) and direction (..., n) itself, or for a product beta (..., h) and direction (..., h, n)."""
    if not product:
        return [(beta, direction)]
    return [(beta[..., m], direction[..., m, :]) for m in range(beta.shape[-1])]


def householder_scores(q: Tensor, b: Tensor, beta: Tensor, direction: Tensor) -> Tensor:
    """(B, H, T, T) [i, j] = q_i^T A'_i ... A'_{j+1} b_j with A'_t = H_{t,h} ... H_{t,1}, H = I - beta k k^T.

    q, b: (B, H, T, n); beta: (B, H, T) and direction (B, H, T, n), or (B, H, T, h) and (B, H, T, h, n) for
    a product. A backward loop over j carries, for every query row i >= j, r_i = A'_{j+1}^T ... A'_i^T q_i
    (each H is symmetric, so A'_t^T = H_{t,1} ... H_{t,h}: H_{t,h} acts on r first).
    """
    T, product = q.shape[2], direction.dim() == 5
    rows = torch.arange(T, device=q.device)[:, None]
    r, columns = q, []
    for j in reversed(range(T)):
        columns.append((r * b[:, :, j, None]).sum(-1))
        for beta_m, k_m in reversed(factors(beta[:, :, j], direction[:, :, j], product)):
            k = k_m[:, :, None]  # (B, H, 1, n)
            r = r - (rows >= j) * beta_m[:, :, None, None] * (r * k).sum(-1, keepdim=True) * k
    return torch.stack(columns[::-1], dim=-1)


def log_weights(evolution: Evolution, B: int, H: int, T: int, like: Tensor) -> Tensor | None:
    """(B, H, T, T) sum_{t=j+1..i} log a_t + log i_j for the scalar part of A and the input gate, or None."""
    if evolution.scalar is None and evolution.log_i is None:
        return None
    ls = evolution.scalar if evolution.scalar is not None else like.new_zeros(B, T, H)
    lw = segsum(ls.transpose(1, 2))
    if evolution.log_i is not None:
        lw = lw + evolution.log_i.transpose(1, 2)[..., None, :]
    return lw


def transported_scores(q: Tensor, b: Tensor, evolution: Evolution, shift: Tensor | None = None) -> Tensor:
    """(B, H, T, T) scores q_i^T A_i...A_{j+1} b_j (times i_j) for j <= i, divided by exp(shift_i); -inf above.

    q, b: (B, T, H, n); shift: (B, H, T) or None.
    """
    B, T, H, _ = q.shape
    q, b = q.transpose(1, 2), b.transpose(1, 2)  # (B, H, T, n)
    lw = log_weights(evolution, B, H, T, q)
    if shift is not None:
        lw = (lw if lw is not None else torch.zeros_like(shift[..., None])) - shift[..., None]
    if evolution.diagonal is not None:
        decay = segsum(evolution.diagonal.permute(0, 2, 3, 1)).permute(0, 1, 3, 4, 2)  # (B, H, T, T, n)
        decay = decay + lw[..., None] if lw is not None else decay
        scores = torch.einsum("bhid,bhjd,bhijd->bhij", q, b, torch.exp(decay))
    else:
        if evolution.householder:
            scores = householder_scores(q, b, evolution.beta.transpose(1, 2), evolution.direction.transpose(1, 2))
        else:
            scores = q @ b.transpose(-1, -2)
        scores = scores * torch.exp(lw) if lw is not None else scores
    return scores.masked_fill(~_causal(T, q.device), float("-inf"))


def row_scale(evolution: Evolution, q: Tensor) -> Tensor:
    """(B, H, T) m_i = max_j of the log weights reaching row i (zero without scalar decay or input gate)."""
    B, T, H, _ = q.shape
    lw = log_weights(evolution, B, H, T, q)
    return lw.amax(-1).detach() if lw is not None else q.new_zeros(B, H, T)


def coefficients(q: Tensor, b: Tensor, evolution: Evolution, phi: str, eta: str,
                 eta_learned: Tensor | None = None) -> Tensor:
    """(B, H, T, T) coefficients alpha_ij, zero above the diagonal.

    eta_learned: (B, T, H) values of the learned normaliser, used when eta = 'learned'.
    """
    m = row_scale(evolution, q) if phi == "identity" and eta in (*STABILISED, "abs_sum") else None
    scores = transported_scores(q, b, evolution, m)
    return readout(scores, _causal(scores.shape[-1], scores.device), phi, eta, eta_learned, m)


def readout(scores: Tensor, causal: Tensor, phi: str, eta: str, eta_learned: Tensor | None = None,
            m: Tensor | None = None) -> Tensor:
    """(B, H, T, L) coefficients phi(score_ij) / eta_i from scores (B, H, T, L) where `causal` (T, L) is set,
    zero elsewhere; m (B, H, T): the log scale the scores were divided by (phi = identity), or None.
    phi = exp with eta = sum is a softmax over the row (its maximum subtracted)."""
    if phi == "exp" and eta == "sum":
        return torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
    alpha = PHIS[phi](scores.masked_fill(~causal, 0.0)).masked_fill(~causal, 0.0)
    return ETAS[eta].coefficients(alpha, m, eta_learned)


def reference(q: Tensor, b: Tensor, v: Tensor, evolution: Evolution, phi: str, eta: str,
              eta_learned: Tensor | None = None) -> Tensor:
    """y (B, T, H, dv) = alpha v with alpha = `coefficients` materialised: the definition, every phi and eta."""
    alpha = coefficients(q, b, evolution, phi, eta, eta_learned)
    return (alpha @ v.transpose(1, 2)).transpose(1, 2)


def attention(q: Tensor, b: Tensor, v: Tensor) -> Tensor:
    """phi = exp, eta = sum, A = I: softmax attention by PyTorch's fused scaled_dot_product_attention
    (b carries its own scale)."""
    y = F.scaled_dot_product_attention(q.transpose(1, 2), b.transpose(1, 2), v.transpose(1, 2), is_causal=True,
                                       scale=1.0)
    return y.transpose(1, 2)


def linear_readout(q: Tensor, b: Tensor, v: Tensor, evolution: Evolution) -> Tensor:
    """phi = identity, eta = 1, A scalar or I: ((q b^T) * exp(log weights)) v, where exp(-inf) = 0 above
    the diagonal is the causal mask (a 0/1 mask when A = I)."""
    B, T, H, _ = q.shape
    lw = log_weights(evolution, B, H, T, q)
    q, b, v = q.transpose(1, 2), b.transpose(1, 2), v.transpose(1, 2)
    weights = torch.exp(lw) if lw is not None else _causal(T, q.device).to(q.dtype)
    return (((q @ b.transpose(-1, -2)) * weights) @ v).transpose(1, 2)


def quadratic(q: Tensor, b: Tensor, v: Tensor, evolution: Evolution, phi: str, eta: str,
              eta_learned: Tensor | None = None) -> Tensor:
    """`reference`'s numbers (to rounding), O(T^2) per head; softmax attention with A = I and the
    unnormalised linear readout with scalar or no A take the shorter paths above, the rest `reference`."""
    plain = evolution.diagonal is None and not evolution.householder
    if plain and phi == "exp" and eta == "sum" and evolution.log_a is None and evolution.log_i is None:
        return attention(q, b, v)
    if plain and phi == "identity" and eta == "one":
        return linear_readout(q, b, v, evolution)
    return reference(q, b, v, evolution, phi, eta, eta_learned)


def steps(x: Tensor | None, T: int) -> list[Tensor | None]:
    """x (B, T, ...) as T slices (B, ...); unbind's backward writes one gradient, where x[:, t] writes T."""
    return list(x.unbind(1)) if x is not None else [None] * T


def step_scales(log_decay: Tensor | None, log_gain: Tensor | None, m: Tensor,
                stabilise: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Multipliers of A'_t S and of b_t v_t^T at one step, and the state's new log scale m_t (B, H)."""
    log_decay = log_decay if log_decay is not None else torch.zeros_like(m)
    log_gain = log_gain if log_gain is not None else torch.zeros_like(m)
    if not stabilise:
        return torch.exp(log_decay), torch.exp(log_gain), m
    m_new = torch.maximum(m + log_decay, log_gain).detach()
    return torch.exp(m + log_decay - m_new), torch.exp(log_gain - m_new), m_new


def compact_wy(beta: Tensor, direction: Tensor) -> tuple[Tensor, Tensor]:
    """U, W (..., n, h) with H_h ... H_1 = I - U W^T for H_m = I - beta_m k_m k_m^T (beta (..., h), direction
    (..., h, n)), the compact WY form of a product of Householders, for all steps at once: multiplying
    I - U W^T on the left by H_m appends beta_m k_m to U and k_m - W U^T k_m to W."""
    U = W = None
    for beta_m, k_m in factors(beta, direction, product=True):
        w_m = k_m if U is None else k_m - (W @ (U.transpose(-1, -2) @ k_m[..., None]))[..., 0]
        u_m = beta_m[..., None] * k_m
        U = u_m[..., None] if U is None else torch.cat([U, u_m[..., None]], -1)
        W = w_m[..., None] if W is None else torch.cat([W, w_m[..., None]], -1)
    return U, W


def transition(S: Tensor, log_d: Tensor | None, beta: Tensor | None, k: Tensor | None) -> Tensor:
    """A'_t S for the state S (B, H, n, dv): the diagonal part exp(log_d) (B, H, n), the Householder
    part I - beta k k^T (beta (B, H), k (B, H, n)) of A_t, or a product of Householders in its compact WY form
    I - U W^T (`compact_wy`: beta = U and k = W, both (B, H, n, h))."""
    if log_d is not None:
        return torch.exp(log_d)[..., None] * S
    if beta is None:
        return S
    if k.dim() == 4:
        return S - beta @ (k.transpose(-1, -2) @ S)
    kS = torch.einsum("bhn,bhnd->bhd", k, S)
    return S - beta[..., None, None] * k[..., None] * kS[..., None, :]


def empty_state(q: Tensor, dv: int, eta: str) -> State:
    """The state before the first token: S = 0 with dv (+1 for the causal sum) columns, m = -inf when stabilised."""
    B, _, H, n = q.shape
    m = q.new_full((B, H), float("-inf")) if eta in STABILISED else q.new_zeros(B, H)
    return State(q.new_zeros(B, H, n, dv + (eta in STABILISED)), m)


def recurrent(q: Tensor, b: Tensor, v: Tensor, evolution: Evolution, phi: str, eta: str,
              eta_learned: Tensor | None = None, initial: State | None = None,
              return_state: bool = False) -> Tensor | tuple[Tensor, State]:
    """y (B, T, H, dv) stepping S_t = A_t S_{t-1} + i_t b_t v_t^T through time: phi = identity, O(T).

    initial: the state to continue from (State; default empty); with return_state, (y, final State).
    """
    stabilise = eta in STABILISED
    S, m = initial if initial is not None else empty_state(q, v.shape[-1], eta)
    v = augment(v, eta)
    T = q.shape[1]
    beta, direction = evolution.beta, evolution.direction
    if evolution.householder and beta.dim() == 4:  # a product of Householders: two matrix products a step
        beta, direction = compact_wy(beta, direction)
    per_step = zip(steps(q, T), steps(b, T), steps(v, T), steps(evolution.scalar, T), steps(evolution.log_i, T),
                   steps(evolution.diagonal, T), steps(beta, T), steps(direction, T))
    ys, ms = [], []
    for q_t, b_t, v_t, log_a, log_i, log_d, beta, k in per_step:
        decay, gain, m = step_scales(log_a, log_i, m, stabilise)
        S = decay[..., None, None] * transition(S, log_d, beta, k) + gain[..., None, None] * (b_t[..., None] * v_t[..., None, :])
        ys.append(torch.einsum("bhn,bhnd->bhd", q_t, S))
        ms.append(m)
    y = ETAS[eta].state(torch.stack(ys, 1), torch.stack(ms, 1), eta_learned)
    return (y, State(S, m)) if return_state else y


def running_scales(log_decay: Tensor | None, log_gain: Tensor | None, m0: Tensor, T: int,
                   stabilise: bool) -> tuple[Tensor | None, Tensor | None, Tensor]:
    """`step_scales` of all T steps at once: the multipliers (B, T, H) of A'_t S and of b_t v_t^T (None for
    no factor) and the log scales m_t (B, T, H) from m0 (B, H); m, detached, is stepped under no_grad."""
    if not stabilise:
        exp = lambda x: None if x is None else torch.exp(x)  # noqa: E731
        return exp(log_decay), exp(log_gain), m0[:, None].expand(-1, T, -1)
    zeros = m0.new_zeros(m0.shape[0], T, m0.shape[1])
    log_decay = log_decay if log_decay is not None else zeros
    log_gain = log_gain if log_gain is not None else zeros
    with torch.no_grad():
        m, ms = m0, []
        for ld, lg in zip(log_decay.unbind(1), log_gain.unbind(1)):
            m = torch.maximum(m + ld, lg)
            ms.append(m)
        m = torch.stack(ms, 1)
    m_prev = torch.cat([m0[:, None], m[:, :-1]], 1)
    return torch.exp(m_prev + log_decay - m), torch.exp(log_gain - m), m


def scan(q: Tensor, b: Tensor, v: Tensor, evolution: Evolution, phi: str, eta: str,
         eta_learned: Tensor | None = None, initial: State | None = None,
         return_state: bool = False) -> Tensor | tuple[Tensor, State]:
    """y (B, T, H, dv): `recurrent`'s recurrence for A_t without a Householder part, where every state entry
    evolves on its own (S_t = D_t * S_{t-1} + i_t b_t v_t^T), as one linear scan (scan.py); O(T).

    The scales are `recurrent`'s; all T states (B, T, H, n, dv) are kept, for y_t = S_t^T q_t and the gradient.
    """
    if evolution.householder:
        raise ValueError("the scan form needs an elementwise A_t (scalar or diagonal), not a Householder part")
    B, T, H, _ = q.shape
    S0, m0 = initial if initial is not None else empty_state(q, v.shape[-1], eta)
    decay, gain, m = running_scales(evolution.scalar, evolution.log_i, m0, T, eta in STABILISED)
    D = decay[..., None, None] if decay is not None else q.new_ones(1, 1, 1, 1, 1).expand(B, T, H, 1, 1)
    if evolution.diagonal is not None:
        diagonal = torch.exp(evolution.diagonal)[..., None]  # (B, T, H, n, 1)
        D = diagonal * D if decay is not None else diagonal
    impulse = gain[..., None] * b if gain is not None else b
    S = linear_scan(D, impulse[..., None] * augment(v, eta)[..., None, :], S0)  # (B, T, H, n, dv)
    y = ETAS[eta].state((q[..., None] * S).sum(-2), m, eta_learned)
    return (y, State(S[:, -1], m[:, -1])) if return_state else y


FORMS = {"quadratic": quadratic, "recurrent": recurrent, "chunked": chunked, "scan": scan}
