"""Accuracy over scored positions: micro (per token) and MAD's macro (mean of per-class accuracy)."""

from __future__ import annotations

import torch
from torch import Tensor


def accuracy(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Micro and macro accuracy of predictions at scored positions (both 1-D, same length).

    micro: correct scored tokens / scored tokens.
    macro: for each class that occurs as a target, the fraction of its positions predicted
    correctly, averaged over those classes (torchmetrics MulticlassAccuracy(average='macro')
    restricted to classes present in the targets, as MAD reports it).
    """
    correct = (pred == target).float()
    classes, inverse = torch.unique(target, return_inverse=True)
    per_class = torch.zeros(len(classes), device=target.device).index_add_(0, inverse, correct)
    counts = torch.bincount(inverse, minlength=len(classes)).float()
    return {
        "accuracy": correct.mean().item(),
        "macro_accuracy": (per_class / counts).mean().item(),
    }
