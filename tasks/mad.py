"""MAD's non-recall tasks: selective copying, compression and memorisation."""

import numpy as np

from .common import IGNORE, Examples, require


def _validate_copying(vocab_size: int, seq_len: int, num_tokens_to_copy: int) -> None:
    require(vocab_size >= 3, "vocab_size", vocab_size,
            "must be at least 3 for 1 content token + blank + copy token")
    require(num_tokens_to_copy >= 1, "num_tokens_to_copy", num_tokens_to_copy, "must be at least 1")
    require(2 * num_tokens_to_copy + 1 < seq_len, "num_tokens_to_copy", num_tokens_to_copy,
            f"need 2*num_tokens_to_copy + 1 < seq_len ({seq_len})")


def selective_copying(
    num_examples: int,
    rng: np.random.Generator,
    *,
    vocab_size: int = 16,
    seq_len: int = 256,
    num_tokens_to_copy: int = 16,
) -> Examples:
    """MAD selective copying: copy the content tokens scattered among blanks, in order.

    From athms/mad-lab `mad/data/instances.py::generate_copying_instance` with selective=True
    (`configs/tasks/selective-copying.yml`). Vocabulary: content tokens 0..vocab_size-3 (drawn
    with replacement), blank vocab_size-2, copy token vocab_size-1. The first seq_len - c - 1
    positions (c = num_tokens_to_copy) hold the c content tokens with the seq_len - 2c - 1 blanks
    inserted, each before a uniformly chosen content token (MAD's `np.insert`, so the last content
    token always sits just before the copy token); then the copy token and c blanks. Labels are
    aligned with the inputs (no shift): the i-th blank after the copy token is labelled with the
    i-th content token. T = seq_len.

    Example, `selective_copying(1, np.random.default_rng(2), vocab_size=4, seq_len=8,
    num_tokens_to_copy=2)` (content 0-1, blank 2, copy 3):

        inputs           2    1    2    2    0    3    2    2
        targets       -100 -100 -100 -100 -100 -100    1    0

    Scored and trained on: the last num_tokens_to_copy positions (MAD's loss sees only these
    labels), so train_targets == targets.
    """
    _validate_copying(vocab_size, seq_len, num_tokens_to_copy)
    n, c = num_examples, num_tokens_to_copy
    blank, copy = vocab_size - 2, vocab_size - 1
    content = rng.integers(0, vocab_size - 2, size=(n, c))
    blanks_before = rng.multinomial(seq_len - 2 * c - 1, np.full(c, 1.0 / c), size=n)
    where = np.arange(c) + np.cumsum(blanks_before, axis=1)
    inputs = np.full((n, seq_len), blank, dtype=np.int64)
    np.put_along_axis(inputs, where, content, axis=1)
    inputs[:, seq_len - c - 1] = copy
    targets = np.full((n, seq_len), IGNORE, dtype=np.int64)
    targets[:, seq_len - c:] = content
    return Examples(inputs, targets, targets)


def _validate_compression(vocab_size: int, seq_len: int) -> None:
    require(vocab_size >= 2, "vocab_size", vocab_size,
            "must be at least 2 for 1 content token + the compression token")
    require(seq_len >= 2, "seq_len", seq_len, "must be at least 2")


def compression(
    num_examples: int,
    rng: np.random.Generator,
    *,
    vocab_size: int = 16,
    seq_len: int = 32,
    score_compression_token: bool = True,
) -> Examples:
    """MAD compression: reconstruct the whole sequence from the state at its last position.

    From athms/mad-lab `mad/data/instances.py::generate_compression_instance`
    (`configs/tasks/compression.yml`; MAD trains it with `mad/model/auto_encoder.py`, which pools
    the last position and decodes every position from it with an MLP and positional embeddings).
    Vocabulary: content tokens 0..vocab_size-2, compression token vocab_size-1. seq_len - 1
    uniform content tokens followed by the compression token. Labels are the inputs themselves
    (no shift). T = seq_len.

    Example, `compression(1, np.random.default_rng(3), vocab_size=4, seq_len=6)` (content 0-2,
    compression token 3):

        inputs           2    0    0    0    0    3
        targets          2    0    0    0    0    3

    Scored and trained on: every position, the constant compression token included, as MAD's
    targets are the inputs (so train_targets == targets). score_compression_token=False scores
    the seq_len - 1 content positions only (the last target is -100) and still trains on every
    position with loss_on='all'. Each target is the input at its own position, so a causal LM
    would read the answer: decode from the last position only (cdyn-bench:
    task.readout=last_position).
    """
    _validate_compression(vocab_size, seq_len)
    inputs = rng.integers(0, vocab_size - 1, size=(num_examples, seq_len))
    inputs[:, -1] = vocab_size - 1
    targets = inputs.copy()
    if score_compression_token:
        return Examples(inputs, targets, targets)
    targets[:, -1] = IGNORE
    return Examples(inputs, targets, inputs.copy())


def _validate_memorization(vocab_size: int, seq_len: int, map_seed: int) -> None:
    require(vocab_size >= 3, "vocab_size", vocab_size,
            "must be at least 3 for 1 key + 1 value + the insert token")
    require(seq_len >= 2 and seq_len % 2 == 0, "seq_len", seq_len, "must be even and at least 2")
    require(map_seed >= 0, "map_seed", map_seed, "must be >= 0")


def memorization_map(vocab_size: int, map_seed: int) -> np.ndarray:
    """The fixed key -> value map of `memorization`: entry k is the value of key k."""
    num_keys = (vocab_size - 1) // 2
    num_values = vocab_size - 1 - num_keys
    return num_keys + np.random.default_rng(map_seed).permutation(num_values)[:num_keys]


def memorization(
    num_examples: int,
    rng: np.random.Generator,
    *,
    vocab_size: int = 256,
    seq_len: int = 32,
    map_seed: int = 0,
) -> Examples:
    """MAD memorisation: recall values from a key->value map fixed across all sequences.

    From athms/mad-lab `mad/data/instances.py::generate_memorization_instance` and
    `generate_kv_map` (`configs/tasks/memorization.yml`). Vocabulary: keys 0..(vocab_size-1)//2-1,
    values the rest below vocab_size-1, insert token vocab_size-1. The map is an injective map
    from keys to values drawn from `map_seed` alone, so train, validation and test splits (drawn
    from different rngs) share it; it is never shown in context. Each sequence is seq_len/2 pairs
    `k insert`, keys uniform with replacement; labels are aligned with the inputs (no shift).
    T = seq_len.

    Example, `memorization(1, np.random.default_rng(1), vocab_size=5, seq_len=6)` (keys 0-1,
    values 2-3, insert token 4; map_seed=0 maps 0->2, 1->3):

        inputs           0    4    1    4    1    4
        targets       -100    2 -100    3 -100    3

    Scored and trained on: the insert positions, target = the map's value of the key before them
    (MAD's loss sees only these labels), so train_targets == targets.
    """
    _validate_memorization(vocab_size, seq_len, map_seed)
    kv_map = memorization_map(vocab_size, map_seed)
    keys = rng.integers(0, len(kv_map), size=(num_examples, seq_len // 2))
    inputs = np.full((num_examples, seq_len), vocab_size - 1, dtype=np.int64)
    inputs[:, 0::2] = keys
    targets = np.full((num_examples, seq_len), IGNORE, dtype=np.int64)
    targets[:, 1::2] = kv_map[keys]
    return Examples(inputs, targets, targets)
