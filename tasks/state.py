"""State tracking: the running element of a finite group, scored at every position.

Each input token is a group element (its index in the group's element list) and the target at position t
is the running product s_t = s_(t-1) * g_t (s_1 = g_1), every position scored. Running parity is the
group Z_2, the running sum mod m is Z_m; the word problems of S3, A5 and S5 are built in (Merrill, Petty
and Sabharwal, "The Illusion of State in State-Space Models", ICML 2024: S5 is beyond diagonal SSMs and
attention at fixed depth; Grazzi et al., ICLR 2025: parity needs transitions with negative eigenvalues).
Training and validation sequences have seq_len tokens; the test split has test_seq_len (4 x seq_len by
default), so the test accuracy measures length generalisation and the validation accuracy, on which the
learning rate is chosen, the training length. Nothing here imports torch or Hydra.
"""

import functools
import itertools

import numpy as np

from .common import Examples, require

SPLITS = ("train", "val", "test")


@functools.cache
def permutation_group(name: str) -> tuple[tuple[int, ...], ...]:
    """The elements of S3, S5 (every permutation) or A5 (the even ones of 5 points), in lexicographic order."""
    points = {"S3": 3, "S5": 5, "A5": 5}[name]
    perms = itertools.permutations(range(points))
    if name == "A5":
        perms = (p for p in perms if sum(p[i] > p[j] for i in range(5) for j in range(i + 1, 5)) % 2 == 0)
    return tuple(perms)


@functools.cache
def multiplication_table(group: str) -> np.ndarray:
    """(|G|, |G|) int64 table[a, b] = index of a * b: Z<m> adds mod m; permutations compose, (a * b)(i) = b(a(i))
    (apply a, then b), so that the running product applies the tokens in reading order."""
    if group.startswith("Z"):
        m = int(group[1:])
        return (np.arange(m)[:, None] + np.arange(m)[None, :]) % m
    elements = permutation_group(group)
    index = {p: i for i, p in enumerate(elements)}
    return np.array([[index[tuple(b[a[i]] for i in range(len(a)))] for b in elements] for a in elements])


GROUPS = ("S3", "A5", "S5")


def running_products(tokens: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(N, T) running products s_t = s_(t-1) * g_t of (N, T) element indices, s_1 = g_1."""
    out = np.empty_like(tokens)
    out[:, 0] = tokens[:, 0]
    for t in range(1, tokens.shape[1]):
        out[:, t] = table[out[:, t - 1], tokens[:, t]]
    return out


def _words(num_examples: int, rng: np.random.Generator, table: np.ndarray, seq_len: int, test_seq_len: int,
           split: str) -> Examples:
    require(seq_len >= 1, "seq_len", seq_len, "must be at least 1")
    require(test_seq_len >= seq_len, "test_seq_len", test_seq_len, f"must be at least seq_len ({seq_len})")
    require(split in SPLITS, "split", split, f"must be one of {', '.join(SPLITS)}")
    length = test_seq_len if split == "test" else seq_len
    tokens = rng.integers(0, len(table), size=(num_examples, length))
    targets = running_products(tokens, table)
    return Examples(tokens, targets, targets)


def group_word(
    num_examples: int,
    rng: np.random.Generator,
    *,
    group: str = "S5",
    seq_len: int = 64,
    test_seq_len: int = 256,
    split: str = "train",
) -> Examples:
    """The word problem of a finite group: uniform random elements in, their running product out.

    group: S3 (6 elements), A5 (60) or S5 (120); element i is the i-th permutation in lexicographic order,
    and (a * b) applies a, then b. The split (set by the data layer) picks the length: test_seq_len for the
    test split, seq_len otherwise.

    Example, `group_word(1, np.random.default_rng(0), group="S3", seq_len=6)` (0 is the identity):

        inputs      5  3  3  1  1  0
        targets     5  1  2  4  2  2
    """
    require(group in GROUPS, "group", group, f"must be one of {', '.join(GROUPS)}")
    return _words(num_examples, rng, multiplication_table(group), seq_len, test_seq_len, split)


def modular_sum(
    num_examples: int,
    rng: np.random.Generator,
    *,
    modulus: int = 3,
    seq_len: int = 64,
    test_seq_len: int = 256,
    split: str = "train",
) -> Examples:
    """Running sum mod m: digits 0..m-1 in, the sum of the prefix mod m out (the group Z_m).

    Example, `modular_sum(1, np.random.default_rng(0), modulus=3, seq_len=6)`:

        inputs      2  1  1  0  0  0
        targets     2  0  1  1  1  1
    """
    require(modulus >= 2, "modulus", modulus, "must be at least 2")
    return _words(num_examples, rng, multiplication_table(f"Z{modulus}"), seq_len, test_seq_len, split)


def parity(
    num_examples: int,
    rng: np.random.Generator,
    *,
    seq_len: int = 64,
    test_seq_len: int = 256,
    split: str = "train",
) -> Examples:
    """Running parity: bits in, the parity of the prefix out (the group Z_2).

    Example, `parity(1, np.random.default_rng(0), seq_len=6)`:

        inputs      1  1  1  0  0  0
        targets     1  0  1  1  1  1
    """
    return _words(num_examples, rng, multiplication_table("Z2"), seq_len, test_seq_len, split)
