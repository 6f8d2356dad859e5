"""Multi-query associative recall (MQAR), the recall task of Zoology (Arora et al. 2024)."""

import numpy as np

from .common import IGNORE, Examples, distinct_integers, require


def _validate(vocab_size: int, seq_len: int, num_kv_pairs: int, power_a: float) -> None:
    require(seq_len >= 4 and seq_len % 2 == 0, "seq_len", seq_len, "must be even and at least 4")
    require(num_kv_pairs >= 1, "num_kv_pairs", num_kv_pairs, "must be at least 1")
    require(4 * num_kv_pairs <= seq_len, "num_kv_pairs", num_kv_pairs,
            f"need 4*num_kv_pairs <= seq_len ({seq_len})")
    require(vocab_size // 2 - 1 >= num_kv_pairs, "vocab_size", vocab_size,
            f"must be at least {2 * num_kv_pairs + 2} for {num_kv_pairs} distinct keys"
            " (from 1..vocab_size//2-1) and the filler token 0")
    require(power_a > 0, "power_a", power_a, "must be > 0 (1 gives uniform query positions)")


def query_slots(rng: np.random.Generator, n: int, space: int, k: int, power_a: float) -> np.ndarray:
    """(n, k) distinct slots in [0, space), drawn in order with P(slot i) ~ (i+1)^(power_a-1).

    Exponential race: the k smallest of E_i / p_i (E_i i.i.d. exponential), in increasing order,
    have the same law, order included, as Zoology's sequential
    `np.random.choice(space, k, replace=False, p=p)`.
    """
    rate = np.arange(1, space + 1, dtype=np.float32) ** np.float32(1.0 - power_a)
    arrival = rng.standard_exponential((n, space), dtype=np.float32) * rate
    first = np.argpartition(arrival, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(arrival, first, axis=1), axis=1)
    return np.take_along_axis(first, order, axis=1)


def mqar(
    num_examples: int,
    rng: np.random.Generator,
    *,
    vocab_size: int = 256,
    seq_len: int = 64,
    num_kv_pairs: int = 4,
    power_a: float = 0.01,
    random_non_queries: bool = True,
) -> Examples:
    """Multi-query associative recall: recall the value of each key queried after the context.

    From HazyResearch/zoology `zoology/data/multiquery_ar.py::multiquery_ar` (num_passes=1).
    Vocabulary: 0 is the filler token, keys are 1..vocab_size//2-1, values vocab_size//2..
    vocab_size-1. Keys are distinct within a sequence and so are values. The sequence opens with
    the num_kv_pairs pairs `k1 v1 k2 v2 ...`; the rest is (seq_len - 2*num_kv_pairs)/2 two-token
    slots, and key j is queried once, in slot g_j at position 2*num_kv_pairs + 2*g_j. The slots are
    drawn without replacement with P(g) ~ (g+1)^(power_a-1), so small power_a puts most queries
    right after the context, and key 1 takes the first slot drawn. Zoology builds seq_len+1 tokens
    and shifts; here T = seq_len, the shift done. With random_non_queries every filler position
    gets a uniform token from [0, vocab_size) (it may equal a key but is never scored).

    Example, `mqar(1, np.random.default_rng(3), vocab_size=16, seq_len=12, num_kv_pairs=2,
    random_non_queries=False)` (keys 1-7, values 8-15):

        inputs           1   10    5    8    0    0    5    0    0    0    1    0
        targets       -100 -100 -100 -100 -100 -100    8 -100 -100 -100   10 -100

    Scored: the num_kv_pairs query positions, where the target is the queried key's value.
    Trained on: the same positions (Zoology's loss ignores every other label), so
    train_targets == targets.
    """
    _validate(vocab_size, seq_len, num_kv_pairs, power_a)
    n, kv, half = num_examples, num_kv_pairs, vocab_size // 2
    keys = distinct_integers(rng, n, kv, 1, half)
    values = distinct_integers(rng, n, kv, half, vocab_size)
    context = 2 * kv
    slots = query_slots(rng, n, (seq_len - context) // 2, kv, power_a)

    rows, query = np.arange(n)[:, None], context + 2 * slots
    if random_non_queries:
        inputs = rng.integers(0, vocab_size, size=(n, seq_len))
    else:
        inputs = np.zeros((n, seq_len), dtype=np.int64)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values
    inputs[rows, query] = keys
    targets = np.full((n, seq_len), IGNORE, dtype=np.int64)
    targets[rows, query] = values
    return Examples(inputs, targets, targets)
