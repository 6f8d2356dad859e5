"""Introspection for analyses: per layer, the coefficients alpha, the eigenvalues of A_t and eta."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cdyn_bench.mixer.components import Evolution
from cdyn_bench.mixer.forms import coefficients
from cdyn_bench.mixer.layer import CoeffMixer


def eigenvalues(evolution: Evolution, shape: torch.Size, like: Tensor) -> Tensor:
    """(B, T, H, n) eigenvalues of every A_t: a_t (scalar), the diagonal, or a_t {1 - beta_t, 1, ..., 1}
    for (gated) Householder A, the first along k_t; ones for A = I."""
    lam = like.new_ones(shape)
    if evolution.scalar is not None:
        lam = lam * torch.exp(evolution.scalar)[..., None]
    if evolution.diagonal is not None:
        lam = lam * torch.exp(evolution.diagonal)
    if evolution.householder:
        along_k = torch.cat([(1 - evolution.beta)[..., None], like.new_ones(shape[:-1] + (shape[-1] - 1,))], -1)
        lam = lam * along_k
    return lam


def normaliser(alpha_raw: Tensor, eta: str, eta_learned: Tensor | None) -> Tensor:
    """(B, H, T) eta_i from the unnormalised coefficients phi(.) (B, H, T, T); may be inf where they overflow."""
    if eta == "one":
        return torch.ones_like(alpha_raw[..., 0])
    if eta == "learned":
        return eta_learned.transpose(1, 2)
    if eta == "abs_sum":
        return alpha_raw.abs().sum(-1)
    total = alpha_raw.sum(-1)
    return total if eta == "sum" else total.abs().clamp_min(1.0)


@torch.no_grad()
def inspect_mixer(mixer: CoeffMixer, u: Tensor) -> dict[str, Tensor | int]:
    """alpha (B, H, T, T), eigenvalues of A_t (B, T, H, n), eta (B, H, T) and the state size for block input u."""
    q, b, _, evolution, eta_learned = mixer.components(u)
    cfg = mixer.cfg
    raw = coefficients(q, b, evolution, cfg.phi, "one")
    return {
        "alpha": coefficients(q, b, evolution, cfg.phi, cfg.eta, eta_learned),
        "eigenvalues": eigenvalues(evolution, q.shape, q),
        "eta": normaliser(raw, cfg.eta, eta_learned),
        "state_size": mixer.state_size(u.shape[1]),
    }


@torch.no_grad()
def inspect_model(model: nn.Module, tokens: Tensor) -> list[dict[str, Tensor | int]]:
    """inspect_mixer for every block of a LanguageModel on tokens (B, L), from each mixer's actual input."""
    inputs: list[Tensor] = []
    mixers = [block.mixer for block in model.blocks]
    hooks = [m.register_forward_pre_hook(lambda _, args: inputs.append(args[0])) for m in mixers]
    try:
        model.hidden(tokens)
    finally:
        for hook in hooks:
            hook.remove()
    return [inspect_mixer(m, u) for m, u in zip(mixers, inputs)]
