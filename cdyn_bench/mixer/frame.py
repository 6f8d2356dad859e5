"""A rotation part of A_t as a change of frame: data-dependent rotary.

With A_t = a_t Rot(theta_t), where Rot turns each pair of channels (2p, 2p+1) by its angle, the rotations
commute, so A_i ... A_(j+1) = (a_i ... a_(j+1)) Rot(Theta_i - Theta_j) with Theta_t = theta_1 + ... + theta_t,
and q_i^T Rot(Theta_i - Theta_j) b_j = (Rot(-Theta_i) q_i)^T (Rot(-Theta_j) b_j). Turning every query and
impulse back by its own Theta leaves A_t = a_t I for the forms (the state they carry is Rot(-Theta_t) S_t);
a continued sequence starts its Theta where the prefix ended. This is rotary embedding with angles from the
data (Mamba-3's complex transitions); tests/test_state_tracking.py checks it against the recurrence with the
rotation matrices written out.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from cdyn_bench.mixer.components import Evolution


def turn_back(x: Tensor, theta: Tensor) -> Tensor:
    """Rot(-theta) x for x (B, T, H, n) and angles theta (B, T, H, n/2), pair by pair."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    cos, sin = torch.cos(theta), torch.sin(theta)
    return torch.stack([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1).flatten(-2)


def in_frame(q: Tensor, b: Tensor, evolution: Evolution, start: Tensor | None = None) -> tuple[Tensor, Tensor, Evolution]:
    """(q, b, A_t) with the rotation part taken out; start (B, H, n/2): the angle a continued sequence starts at."""
    theta = evolution.angles.cumsum(1)
    if start is not None:
        theta = theta + start[:, None]
    return turn_back(q, theta), turn_back(b, theta), dataclasses.replace(evolution, angles=None, frame=theta)
