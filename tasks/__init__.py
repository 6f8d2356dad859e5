"""Synthetic recall, state-tracking and text tasks as pure NumPy generators: (num_examples, rng, **params) -> Examples.

Every generator is `name(num_examples, rng, *, <params>) -> Examples` with keyword parameters
named as the `task.*` config keys and annotated int/float/bool. Token ids lie in
[0, vocab_size): vocab_size is the whole vocabulary, special and noise tokens included. Labels
use -100 where a position is not used. `targets` holds the scored positions (what accuracy is
computed on); `train_targets` holds what the anchor's loss trains on, which is MAD's next-token
loss on every position for the recall tasks and equals `targets` where the anchor trains on the
scored positions only. Nothing here imports torch or Hydra.
"""

from .common import IGNORE, Examples, distinct_integers, first_occurrence, require
from .mad import compression, memorization, selective_copying
from .mqar import mqar
from .recall import (
    fuzzy_in_context_recall,
    in_context_recall,
    noisy_in_context_recall,
)
from .state import group_word, modular_sum, parity
from .corpus import text
from .corpus import vocab_size as text_vocab_size

TASKS = {
    "mqar": mqar,
    "noisy_icr": noisy_in_context_recall,
    "icr": in_context_recall,
    "fuzzy_icr": fuzzy_in_context_recall,
    "selective_copy": selective_copying,
    "compression": compression,
    "memorization": memorization,
    "parity": parity,
    "modular_sum": modular_sum,
    "group_word": group_word,
    "text": text,
}
# Tasks whose vocabulary is not a `vocab_size` parameter: its size from the task's parameters.
VOCAB_SIZES = {"text": text_vocab_size}
# Character-level language modelling: its records also give the losses in bits per character.
CHARACTER_LEVEL = frozenset({"text"})

__all__ = [
    "IGNORE", "TASKS", "Examples", "distinct_integers", "first_occurrence", "require", "mqar", "in_context_recall", "noisy_in_context_recall",
    "fuzzy_in_context_recall", "selective_copying", "compression", "memorization", "parity", "modular_sum",
    "group_word", "text", "VOCAB_SIZES", "CHARACTER_LEVEL",
]
