"""Synthetic recall tasks as pure NumPy generators: (num_examples, rng, **params) -> Examples.

Every generator is `name(num_examples, rng, *, <params>) -> Examples` with keyword parameters
named as the `task.*` config keys and annotated int/float/bool. Token ids lie in
[0, vocab_size): vocab_size is the whole vocabulary, special and noise tokens included. Labels
use -100 where a position is not used. `targets` holds the scored positions (what accuracy is
computed on); `train_targets` holds what the anchor's loss trains on, which is MAD's next-token
loss on every position for the recall tasks and equals `targets` where the anchor trains on the
scored positions only. Nothing here imports torch or Hydra.
"""

from dataclasses import dataclass

import numpy as np

IGNORE = -100


@dataclass(frozen=True)
class Examples:
    """N examples of one task; every array is (N, T) int64.

    Where the anchor trains on the scored positions only, train_targets is targets (one array).
    """

    inputs: np.ndarray
    targets: np.ndarray
    train_targets: np.ndarray


def require(ok: bool, name: str, value, allowed: str) -> None:
    """Raise `ValueError("name=value: allowed")` unless ok."""
    if not ok:
        raise ValueError(f"{name}={value!r}: {allowed}")


def first_occurrence(ids: np.ndarray) -> np.ndarray:
    """For (N, M) ids, the column of the first equal id in the same row, (N, M)."""
    n, m = ids.shape
    order = np.argsort(ids, axis=1, kind="stable")
    ranked = np.take_along_axis(ids, order, axis=1)
    starts = np.ones((n, m), dtype=bool)
    starts[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(m), 0), axis=1)
    first = np.empty_like(order)
    np.put_along_axis(first, order, np.take_along_axis(order, group_start, axis=1), axis=1)
    return first


def distinct_integers(rng: np.random.Generator, n: int, k: int, low: int, high: int) -> np.ndarray:
    """(n, k) int64 from [low, high), each row an ordered draw without replacement."""
    span = high - low
    if span <= 4 * k:
        return low + np.argsort(rng.random((n, span)), axis=1)[:, :k]
    # Rejection: redraw the rows that repeat a value (at most about half of them when k*k <= span),
    # else keep the first k distinct values of a longer i.i.d. stream; both give uniform rows.
    draws = 2 * k if k * k > span else k
    out = np.empty((n, k), dtype=np.int64)
    todo = np.arange(n)
    while todo.size:
        stream = rng.integers(0, span, size=(todo.size, draws))
        is_new = first_occurrence(stream) == np.arange(draws)
        ok = is_new.sum(axis=1) >= k
        pick = np.argsort(~is_new[ok], axis=1, kind="stable")[:, :k]
        out[todo[ok]] = low + np.take_along_axis(stream[ok], pick, axis=1)
        todo = todo[~ok]
    return out


# The task modules import the names above from this package, so they are imported after them.
from .mad import compression, memorization, selective_copying  # noqa: E402
from .mqar import mqar  # noqa: E402
from .recall import (  # noqa: E402
    fuzzy_in_context_recall,
    in_context_recall,
    noisy_in_context_recall,
)

TASKS = {
    "mqar": mqar,
    "noisy_icr": noisy_in_context_recall,
    "icr": in_context_recall,
    "fuzzy_icr": fuzzy_in_context_recall,
    "selective_copy": selective_copying,
    "compression": compression,
    "memorization": memorization,
}

__all__ = [
    "IGNORE", "TASKS", "Examples", "mqar", "in_context_recall", "noisy_in_context_recall",
    "fuzzy_in_context_recall", "selective_copying", "compression", "memorization",
]
