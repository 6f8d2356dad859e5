"""Accuracy over scored positions: micro (per token) and MAD's macro (mean of per-class accuracy).

Given the predictions and targets at the N scored positions of a split:

    micro = (number of positions with pred == target) / N
    macro = mean over classes c in C of  #(pred == target == c) / #(target == c)

where C is every class that occurs as a target or as a prediction, and a class that is predicted
but never a target counts with accuracy 0. This is torchmetrics
`MulticlassAccuracy(num_classes=V, average="macro", ignore_index=-100)` as MAD uses it
(athms/mad-lab `mad/metrics.py`) in torchmetrics >= 1.0, which leaves out only the classes with
no true positive, false positive or false negative. Older torchmetrics `Accuracy` defaulted to
micro averaging, so MAD numbers depend on the version; ours are computed here, not by a library.
One more difference: MAD logs the mean of this value over test batches of 128 examples
(Lightning's epoch mean of per-step values); ours is computed once over the whole split.
"""

from __future__ import annotations

import torch
from torch import Tensor


def accuracy(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Micro and macro accuracy of predictions at scored positions (both 1-D integer, same length)."""
    if target.numel() == 0:
        return {"accuracy": float("nan"), "macro_accuracy": float("nan")}
    num_classes = int(max(pred.max(), target.max())) + 1
    correct = pred == target
    support = torch.bincount(target, minlength=num_classes)
    hits = torch.bincount(target[correct], minlength=num_classes)
    present = (support + torch.bincount(pred, minlength=num_classes)) > 0
    per_class = hits.float() / support.clamp(min=1).float()
    return {
        "accuracy": correct.float().mean().item(),
        "macro_accuracy": per_class[present].mean().item(),
    }
