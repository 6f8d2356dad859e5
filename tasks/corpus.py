"""Character-level language modelling on a fixed corpus that ships with the package (no download).

The corpus is split into three contiguous blocks, train (the first 90% of its tokens), validation (the next
5%) and test (the last 5%); every example is a window of seq_len + 1 consecutive tokens inside one block,
inputs its first seq_len tokens and targets the next token at every position (all scored, as an LM is).
Training windows start at uniform random positions of the train block; validation and test windows are
fixed (evenly spaced over their block, the same for every seed), so every run is scored on the same text.
Vocabulary: the corpus's bytes (256 tokens, the default) or its distinct Unicode characters. The corpus is
checked against its sha256 when it is loaded. Nothing here imports torch or Hydra.
"""

import functools
import hashlib
import lzma
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import Examples, require

CORPUS_DIR = Path(__file__).parent / "corpora"
SPLITS = {"train": (0.0, 0.9), "val": (0.9, 0.95), "test": (0.95, 1.0)}
VOCABULARIES = ("bytes", "chars")


@dataclass(frozen=True)
class Corpus:
    file: str  # under CORPUS_DIR, xz-compressed
    sha256: str  # of the decompressed text
    source: str
    licence: str


CORPORA = {
    "python_stdlib": Corpus(
        "python_stdlib.txt.xz", "2e31e854ce7c5a39d3549a94420e7ba4b51281ef0f32fc8b6ddd601eff6d7d42",
        "CPython 3.11.7's standard library, its 168 top-level modules (Lib/*.py) in name order, 4,698,388 bytes "
        "(scripts/make_text_corpus.py)",
        "PSF License Agreement, tasks/corpora/LICENSE.python_stdlib.txt"),
}


@functools.cache
def load_text(corpus: str) -> bytes:
    """The corpus's text, checked against its sha256 (a damaged or edited file is refused, naming it)."""
    entry = CORPORA[corpus]
    path = CORPUS_DIR / entry.file
    try:
        text = lzma.decompress(path.read_bytes())
    except (OSError, lzma.LZMAError) as err:
        raise ValueError(f"corpus={corpus!r}: cannot read {path} ({err}); restore it (git checkout -- {path.name})") from None
    digest = hashlib.sha256(text).hexdigest()
    require(digest == entry.sha256, "corpus", corpus,
            f"{path} is damaged (sha256 {digest[:12]}..., expected {entry.sha256[:12]}...); restore it from git")
    return text


@functools.cache
def alphabet(corpus: str) -> str:
    """The corpus's distinct characters in code-point order: token i of vocab=chars is alphabet(corpus)[i]."""
    return "".join(sorted(set(load_text(corpus).decode("utf-8"))))


@functools.cache
def encoded(corpus: str, vocab: str) -> tuple[np.ndarray, int]:
    """(the corpus as token ids, the vocabulary size): bytes, or indices into the corpus's alphabet."""
    text = load_text(corpus)
    if vocab == "bytes":
        return np.frombuffer(text, dtype=np.uint8), 256
    codes = np.array([ord(c) for c in text.decode("utf-8")], dtype=np.int32)
    chars = np.array([ord(c) for c in alphabet(corpus)], dtype=np.int32)
    return np.searchsorted(chars, codes).astype(np.int32), len(chars)


def vocab_size(*, corpus: str = "python_stdlib", vocab: str = "bytes", **_) -> int:
    """Tokens of the vocabulary (every byte value, or every distinct character of the corpus)."""
    check(corpus, vocab)
    return encoded(corpus, vocab)[1]


def check(corpus: str, vocab: str) -> None:
    require(corpus in CORPORA, "corpus", corpus, f"must be one of {', '.join(CORPORA)}")
    require(vocab in VOCABULARIES, "vocab", vocab, f"must be one of {', '.join(VOCABULARIES)}")


def block(num_tokens: int, split: str) -> tuple[int, int]:
    """[lo, hi): the split's contiguous block of a corpus of num_tokens tokens."""
    lo, hi = SPLITS[split]
    return int(num_tokens * lo), int(num_tokens * hi)


def window_starts(num_tokens: int, split: str, num_examples: int, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    """First token of each window of seq_len + 1 tokens, every window inside the split's block: uniform random
    for train, evenly spaced (and the same for any rng) for validation and test."""
    lo, hi = block(num_tokens, split)
    count = hi - lo - seq_len  # starts lo .. hi - seq_len - 1
    require(count >= 1, "seq_len", seq_len, f"must be below the {split} block's {hi - lo} tokens")
    if split == "train":
        return lo + rng.integers(0, count, size=num_examples)
    return lo + np.arange(num_examples) * (count - 1) // max(1, num_examples - 1)


def text(
    num_examples: int,
    rng: np.random.Generator,
    *,
    corpus: str = "python_stdlib",
    vocab: str = "bytes",
    seq_len: int = 128,
    split: str = "train",
) -> Examples:
    """Windows of a corpus: seq_len tokens in, the next token at every position out.

    corpus: a name of CORPORA (python_stdlib: CPython 3.11.7's top-level standard-library modules, 4.7 M
    bytes, PSF licence). vocab: bytes (256 tokens) or chars (the corpus's distinct characters). The split
    (set by the data layer) picks the block; validation and test windows do not depend on the rng.

    Example, `text(1, np.random.default_rng(0), seq_len=8)`: a window of the train block, the bytes of
    " n < 2:\n" and the next one (a space):

        inputs       32 110  32  60  32  50  58  10
        targets     110  32  60  32  50  58  10  32
    """
    check(corpus, vocab)
    require(seq_len >= 1, "seq_len", seq_len, "must be at least 1")
    require(split in SPLITS, "split", split, f"must be one of {', '.join(SPLITS)}")
    ids, _ = encoded(corpus, vocab)
    starts = window_starts(len(ids), split, num_examples, seq_len, rng)
    windows = ids[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)
    return Examples(windows[:, :-1], windows[:, 1:], windows[:, 1:])
