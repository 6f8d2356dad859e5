"""Micro and macro accuracy against hand-computed answers (and torchmetrics, where installed)."""

from __future__ import annotations

import pytest
import torch

from cdyn_bench.metrics import accuracy

# (name, pred, target, micro, macro), each answer worked out by hand in the comment.
CASES = [
    # all right: both 1.
    ("perfect", [3, 1, 2], [3, 1, 2], 1.0, 1.0),
    # one target class, 3 of 4 right: micro 3/4; the wrong guess, class 0, is never a target and
    # counts with accuracy 0, so macro is mean(3/4, 0) = 3/8.
    ("one_target_class", [5, 5, 5, 0], [5, 5, 5, 5], 0.75, 0.375),
    # imbalanced: class 0 has 8 positions (all right), class 1 has 2 (both wrong, predicted 0).
    # micro 8/10; macro mean(8/8, 0/2) = 1/2: the rare class weighs as much as the common one.
    ("imbalanced", [0] * 10, [0] * 8 + [1] * 2, 0.8, 0.5),
    # class 0: 3/4, class 1: 1/1, class 2: 0/1, class 3 predicted but never a target: 0.
    # micro 4/6; macro (3/4 + 1 + 0 + 0) / 4 = 0.4375 (0.5833 if predicted-only classes were dropped).
    ("predicted_only_class", [0, 0, 0, 1, 1, 3], [0, 0, 0, 0, 1, 2], 4 / 6, 0.4375),
    # class 7: 1 of 2 right, class 9: 1 of 1; classes in neither (0..6, 8) do not count: 3/4.
    ("absent_classes_ignored", [7, 9, 9], [7, 7, 9], 2 / 3, 0.75),
]


@pytest.mark.parametrize("name, pred, target, micro, macro", CASES, ids=[c[0] for c in CASES])
def test_known_answers(name, pred, target, micro, macro):
    out = accuracy(torch.tensor(pred), torch.tensor(target))
    assert out["accuracy"] == pytest.approx(micro)
    assert out["macro_accuracy"] == pytest.approx(macro)


def test_macro_equals_micro_on_balanced_classes_with_equal_errors():
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 2, 2, 0])
    out = accuracy(pred, target)
    assert out["accuracy"] == pytest.approx(0.5) and out["macro_accuracy"] == pytest.approx(0.5)


def test_empty_split_is_nan():
    out = accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))
    assert all(v != v for v in out.values())


def test_matches_torchmetrics_macro_accuracy():
    metrics = pytest.importorskip("torchmetrics.classification")
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 12, (500,), generator=gen)
    pred = torch.where(torch.rand(500, generator=gen) < 0.6, target, torch.randint(0, 16, (500,), generator=gen))
    reference = metrics.MulticlassAccuracy(num_classes=16, average="macro", ignore_index=-100)
    out = accuracy(pred, target)
    assert out["macro_accuracy"] == pytest.approx(reference(pred, target).item(), abs=1e-6)
    micro = metrics.MulticlassAccuracy(num_classes=16, average="micro")
    assert out["accuracy"] == pytest.approx(micro(pred, target).item(), abs=1e-6)
