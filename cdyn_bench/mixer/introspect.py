"""Introspection for analyses: per layer, the coefficients alpha, the eigenvalues of A_t and |eta|.

Everything is computed in float64 by a float64 copy of each mixer on its actual (float32) input, so
a model whose float32 forward overflows can still be read: the normaliser in log space (log-sum-exp
of the scores when phi = exp), the coefficients and scores from the definition.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from cdyn_bench.choices import EXTREMES
from cdyn_bench.mixer.components import PHIS, Evolution
from cdyn_bench.mixer.forms import _causal, coefficients, factors, transported_scores
from cdyn_bench.mixer.layer import CoeffMixer
from cdyn_bench.mixer.normalisers import ETAS


def eigenvalues(evolution: Evolution, shape: torch.Size, like: Tensor) -> Tensor:
    """(B, T, H, n) eigenvalues of every A_t: a_t (scalar), the diagonal, or a_t {1 - beta_t, 1, ..., 1}
    for (gated) Householder A, the first along k_t; complex for a product of Householders; ones for A = I."""
    lam = like.new_ones(shape)
    if evolution.scalar is not None:
        lam = lam * torch.exp(evolution.scalar)[..., None]
    if evolution.diagonal is not None:
        lam = lam * torch.exp(evolution.diagonal)
    if evolution.householder and evolution.direction.dim() == 5:
        # A product H_h ... H_1: its eigenvalues, complex in general (two reflections make a rotation), of the
        # dense n x n product.
        eye = torch.eye(shape[-1], dtype=like.dtype, device=like.device)
        product = eye.expand(*shape[:-1], shape[-1], shape[-1])
        for beta_m, k_m in factors(evolution.beta, evolution.direction, product=True):
            product = (eye - beta_m[..., None, None] * k_m[..., :, None] * k_m[..., None, :]) @ product
        lam = lam * torch.linalg.eigvals(product)
    elif evolution.householder:
        along_k = torch.cat([(1 - evolution.beta)[..., None], like.new_ones(shape[:-1] + (shape[-1] - 1,))], -1)
        lam = lam * along_k
    return lam


def log_normaliser(scores: Tensor, phi: str, eta: str, eta_learned: Tensor | None) -> Tensor:
    """(B, H, T) log |eta_i| from the transported scores (B, H, T, T) (-inf above the diagonal).

    phi = exp sums in log space (log-sum-exp), so eta_i is finite where exp(score) overflows;
    eta = mlstm is max(|sum|, 1); -inf where a sum is exactly zero.
    """
    return ETAS[eta].log(scores, phi, eta_learned)


def log_coefficients(scores: Tensor, log_eta: Tensor, phi: str) -> Tensor:
    """(B, H, T, T) log |alpha_ij| = log |phi(score_ij)| - log |eta_i| in log space (finite where
    exp(score) overflows); -inf above the diagonal and where phi(score) = 0."""
    causal = _causal(scores.shape[-1], scores.device)
    log_raw = scores if phi == "exp" else torch.log(PHIS[phi](scores.masked_fill(~causal, 0.0)).abs())
    return (log_raw - log_eta[..., None]).masked_fill(~causal, float("-inf"))


def float64_components(mixer: CoeffMixer, u: Tensor) -> tuple[Tensor, Tensor, Evolution, Tensor | None]:
    """q, b (B, T, H, n), A_t and the learned eta of the mixer for block input u, computed in float64 by a
    float64 copy of the mixer (so a learned eta = exp(f(.)) that overflows float32 stays finite)."""
    q, b, _, evolution, eta_learned = copy.deepcopy(mixer).double().components(u.double())
    return q, b, evolution, eta_learned


@torch.no_grad()
def inspect_mixer(mixer: CoeffMixer, u: Tensor) -> dict[str, Tensor | int]:
    """alpha (B, H, T, T), scores q_i^T A_i...A_{j+1} b_j (B, H, T, T; -inf above the diagonal),
    eigenvalues of A_t (B, T, H, n), |eta| and log |eta| (B, H, T) and the state size, for block input u; float64."""
    q, b, evolution, eta_learned = float64_components(mixer, u)
    cfg = mixer.cfg
    scores = transported_scores(q, b, evolution)
    log_eta = log_normaliser(scores, cfg.phi, cfg.eta, eta_learned)
    return {
        "alpha": coefficients(q, b, evolution, cfg.phi, cfg.eta, eta_learned),
        "scores": scores,
        "eigenvalues": eigenvalues(evolution, q.shape, q),
        "eta": torch.exp(log_eta),
        "log_eta": log_eta,
        "state_size": mixer.state_size(u.shape[1]),
    }


def mixer_inputs(model: nn.Module, tokens: Tensor) -> list[tuple[CoeffMixer, Tensor]]:
    """(mixer, its actual input u) for every block of a LanguageModel on tokens (B, L)."""
    inputs: list[Tensor] = []
    mixers = [block.mixer for block in model.blocks]
    hooks = [m.register_forward_pre_hook(lambda _, args: inputs.append(args[0])) for m in mixers]
    try:
        with torch.no_grad():
            model.hidden(tokens)
    finally:
        for hook in hooks:
            hook.remove()
    return list(zip(mixers, inputs))


@torch.no_grad()
def inspect_model(model: nn.Module, tokens: Tensor) -> list[dict[str, Tensor | int]]:
    """inspect_mixer for every block of a LanguageModel on tokens (B, L), from each mixer's actual input."""
    return [inspect_mixer(m, u) for m, u in mixer_inputs(model, tokens)]


def largest(x: Tensor) -> float:
    """The largest non-nan value of x as a float; nan if there is none."""
    x = x[~torch.isnan(x)]
    return float(x.amax()) if x.numel() else float("nan")


@torch.no_grad()
def extremes(model: nn.Module, tokens: Tensor) -> dict[str, float]:
    """EXTREMES over every layer, head and position of tokens (B, L): the largest log |alpha_ij|, |score_ij|,
    log |eta_i| and |log |lambda|| of the eigenvalues of A_t, ignoring nan; what explains a divergence."""
    was_training = model.training
    model.eval()
    found: dict[str, list[float]] = {k: [] for k in EXTREMES}
    try:
        for mixer, u in mixer_inputs(model, tokens):
            seen = inspect_mixer(mixer, u)
            causal = _causal(u.shape[1], u.device)
            found["log_alpha_max"].append(largest(log_coefficients(seen["scores"], seen["log_eta"], mixer.cfg.phi)))
            found["score_abs_max"].append(largest(seen["scores"].masked_fill(~causal, 0.0).abs()))
            found["log_eta_max"].append(largest(seen["log_eta"]))
            found["log_eig_abs_max"].append(largest(seen["eigenvalues"].abs().log().abs()))
    finally:
        model.train(was_training)
    # A layer fed by an overflowed one reads nan; the layers before it say where the growth began.
    return {k: max((x for x in v if x == x), default=float("nan")) for k, v in found.items()}


def extremes_batch(model: nn.Module, seq_len: int, budget: int = 1 << 22) -> int:
    """How many sequences `extremes` reads: up to 8, fewer when the (B, H, T, T, n) diagonal scores
    of one sequence would exceed `budget` float64 values."""
    per_sequence = max(block.mixer.cfg.n_heads * seq_len * seq_len
                       * (block.mixer.n if block.mixer.evolution.kind.factor == "diagonal" else 1) for block in model.blocks)
    return max(1, min(8, budget // per_sequence))


@torch.no_grad()
def noise_mass(model: nn.Module, tokens: Tensor, roles: Tensor, noise: int, query: int) -> list[float]:
    """Per layer, the share of coefficient mass sum_j |alpha_ij| that query rows i put on noise tokens j,
    over heads and sequences: tokens, roles (B, L) with the task's role codes (tasks.roles)."""
    was_training = model.training
    model.eval()
    try:
        shares = []
        for mixer, u in mixer_inputs(model, tokens):
            alpha = inspect_mixer(mixer, u)["alpha"].abs()  # (B, H, L, L)
            rows = (roles == query)[:, None, :, None]
            on_noise = (alpha * (roles == noise)[:, None, None, :]).sum(-1, keepdim=True)
            shares.append(float((on_noise * rows).sum() / (alpha.sum(-1, keepdim=True) * rows).sum()))
    finally:
        model.train(was_training)
    return shares
