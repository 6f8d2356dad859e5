"""What every task generator shares: the Examples container, the ignore label and the sampling helpers."""

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
