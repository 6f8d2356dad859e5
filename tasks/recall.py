"""MAD's in-context recall tasks: plain, noisy, and fuzzy (multi-token keys and values)."""

import numpy as np

from .common import IGNORE, Examples, distinct_integers, first_occurrence, require


def _validate_recall(vocab_size: int, seq_len: int, noise_vocab_size: int,
                     frac_noise: float) -> None:
    require(seq_len >= 4 and seq_len % 2 == 0, "seq_len", seq_len,
            "must be even and at least 4 (one context pair and the final query pair)")
    require(0 <= frac_noise < 1, "frac_noise", frac_noise, "must be in [0, 1)")
    require(noise_vocab_size >= 0, "noise_vocab_size", noise_vocab_size, "must be >= 0")
    require(frac_noise == 0 or noise_vocab_size >= 1, "noise_vocab_size", noise_vocab_size,
            f"must be at least 1 when frac_noise > 0 (frac_noise={frac_noise})")
    require(vocab_size - noise_vocab_size >= 2, "vocab_size", vocab_size,
            f"must be at least {noise_vocab_size + 2} for 1 key + 1 value + "
            f"{noise_vocab_size} noise tokens")


def _recall(n: int, rng: np.random.Generator, vocab_size: int, seq_len: int,
            noise_vocab_size: int, frac_noise: float) -> Examples:
    _validate_recall(vocab_size, seq_len, noise_vocab_size, frac_noise)
    pairs, content = seq_len // 2, vocab_size - noise_vocab_size
    num_keys = content // 2
    rows = np.arange(n)
    kv_map = rng.integers(num_keys, content, size=(n, num_keys))
    keys = rng.integers(0, num_keys, size=(n, pairs))
    values = np.take_along_axis(kv_map, keys, axis=1)

    # Context slots turn into noise chunks, except one per sequence; the final slot is the query.
    noise = rng.random((n, pairs)) < frac_noise
    noise[rows, rng.integers(0, pairs - 1, size=n)] = False
    noise[:, -1] = False
    ids = np.where(noise, num_keys + np.arange(pairs), keys)[:, :-1]
    seen_before = first_occurrence(ids) != np.arange(pairs - 1)

    # The final query repeats a key drawn uniformly from the distinct keys shown (MAD's k_probe).
    shown = ~noise[:, :-1] & ~seen_before
    probe = np.argmax(np.where(shown, rng.random((n, pairs - 1)), -1.0), axis=1)
    keys[:, -1], values[:, -1] = keys[rows, probe], values[rows, probe]
    scored = np.concatenate([seen_before & ~noise[:, :-1], np.ones((n, 1), dtype=bool)], axis=1)

    tokens = np.empty((n, 2 * pairs), dtype=np.int64)
    tokens[:, 0::2], tokens[:, 1::2] = keys, values
    if noise_vocab_size:
        chunks = rng.integers(content, vocab_size, size=(n, pairs, 2))
        tokens = np.where(np.repeat(noise, 2, axis=1), chunks.reshape(n, 2 * pairs), tokens)
    targets = np.full((n, 2 * pairs - 1), IGNORE, dtype=np.int64)
    targets[:, 0::2] = np.where(scored, values, IGNORE)
    return Examples(tokens[:, :-1].copy(), targets, tokens[:, 1:].copy())


def in_context_recall(
    num_examples: int,
    rng: np.random.Generator,
    *,
    vocab_size: int = 16,
    seq_len: int = 128,
) -> Examples:
    """MAD in-context recall (multi-query): key-value pairs whose keys repeat; recall the value.

    From athms/mad-lab `mad/data/instances.py::generate_in_context_recall_instance` with
    multi_query=True and no noise (`configs/tasks/in-context-recall.yml`). Vocabulary: keys are
    0..vocab_size//2-1, values vocab_size//2..vocab_size-1. Each sequence draws its own key->value
    map (values may repeat across keys); seq_len/2 pairs `k v` with keys drawn with replacement,
    the last pair repeating a key shown earlier. MAD builds seq_len tokens and shifts them, so
    T = seq_len - 1.

    Example, `in_context_recall(1, np.random.default_rng(8), vocab_size=4, seq_len=8)` (keys
    0-1, values 2-3):

        inputs           0    3    1    2    0    3    1
        targets       -100 -100 -100 -100    3 -100    2
        train_targets    3    1    2    0    3    1    2

    Scored: the key positions whose key already appeared, target = its value; the last input is
    always one. Trained on (loss_on='all'): every position, the next token.
    """
    return _recall(num_examples, rng, vocab_size, seq_len, 0, 0.0)


def noisy_in_context_recall(
    num_examples: int,
    rng: np.random.Generator,
    *,
    vocab_size: int = 32,
    seq_len: int = 128,
    noise_vocab_size: int = 16,
    frac_noise: float = 0.2,
) -> Examples:
    """MAD noisy in-context recall: in-context recall with pair slots replaced by noise chunks.

    From athms/mad-lab `mad/data/instances.py::generate_noisy_in_context_recall_instance`
    (multi_query=True, `configs/tasks/noisy-in-context-recall.yml`). Vocabulary: the top
    noise_vocab_size ids are noise; of the c = vocab_size - noise_vocab_size content ids, keys are
    0..c//2-1 and values c//2..c-1. As in_context_recall, except that each of the seq_len/2 - 1
    context slots becomes a two-token noise chunk (uniform noise ids) with probability frac_noise,
    one uniformly chosen context slot always stays a pair, and the final query pair is never noise.
    T = seq_len - 1.

    Example, `noisy_in_context_recall(1, np.random.default_rng(3), vocab_size=6, seq_len=8,
    noise_vocab_size=2, frac_noise=0.4)` (keys 0-1, values 2-3, noise 4-5):

        inputs           0    3    5    4    0    3    0
        targets       -100 -100 -100 -100    3 -100    3
        train_targets    3    5    4    0    3    0    3

    Scored: the key positions whose key already appeared in a real pair, target = its value.
    Trained on (loss_on='all'): every position, the next token, noise included.
    """
    return _recall(num_examples, rng, vocab_size, seq_len, noise_vocab_size, frac_noise)


def _validate_fuzzy(vocab_size: int, seq_len: int, k_motif_size: int, v_motif_size: int) -> None:
    require(k_motif_size >= 1, "k_motif_size", k_motif_size, "must be at least 1")
    require(v_motif_size >= 1, "v_motif_size", v_motif_size, "must be at least 1")
    need = 1 + max(2 * k_motif_size, 2 * v_motif_size - 1)
    require(vocab_size >= need, "vocab_size", vocab_size,
            f"must be at least {need} for k_motif_size ({k_motif_size}) distinct key tokens in"
            f" (vocab_size-1)//2, v_motif_size ({v_motif_size}) value tokens in the rest, 1 pad")
    require(((vocab_size - 1) // 2 + 1) ** k_motif_size < 2**62, "k_motif_size", k_motif_size,
            f"too large to index keys over {(vocab_size - 1) // 2} key tokens")
    need = 2 * (k_motif_size + v_motif_size) - 1
    require(seq_len >= need, "seq_len", seq_len,
            f"must be at least {need} = 2*(k_motif_size+v_motif_size) - 1 for the probe and query")


def _motifs(rng, n, slots, size, low, high):
    """Motifs (n, slots, size) of distinct tokens in [low, high), lengths (n, slots) in 1..size."""
    tokens = distinct_integers(rng, n * slots, size, low, high).reshape(n, slots, size)
    return tokens, rng.integers(1, size + 1, size=(n, slots))


def _fuzzy_pairs(rng, n, K, V, num_keys, pad, seq_len, test_split):
    """Pairs in sequence order, as MAD's loop lays them out: context, probe among it, query.

    Returns valid (n, S), key (n, S, K), k_len (n, S), val (n, S, V), v_len (n, S) and a key id
    (n, S); the unused slots come last and are invalid.
    """
    # Enough context slots for MAD's length limit at the shortest pairs (2 tokens).
    m = max(seq_len - 2 * K - V - 1, 0) // 2 + 1
    key, k_len = _motifs(rng, n, m + 2, K, 0, num_keys)
    val, v_len = _motifs(rng, n, m + 2, V, num_keys, pad)
    # Slots 0..m-1 are context pairs, slot m the probe, slot m+1 the query repeating its key.
    k_len[:, m:] = K
    if test_split:
        k_len[:] = K
    key[:, m + 1] = key[:, m]
    # Equal keys share one value, fixed before the length limit is applied.
    code = np.where(np.arange(K) < k_len[..., None], key + 1, 0) @ (num_keys + 1) ** np.arange(K)
    first = first_occurrence(code)
    v_len = np.take_along_axis(v_len, first, axis=1)
    val = np.take_along_axis(val, first[..., None], axis=1)

    at, present, kept = _probe_layout(rng, k_len + v_len, code, seq_len, K + V)
    rank = np.concatenate([np.where(kept, np.arange(m), m + 1.0),
                           np.where(present, at - 0.5, m + 1.0)[:, None],
                           np.full((n, 1), m + 0.5)], axis=1)
    order = np.argsort(rank, axis=1, kind="stable")
    valid = np.concatenate([kept, present[:, None], np.ones((n, 1), dtype=bool)], axis=1)
    valid, k_len, v_len, code = (np.take_along_axis(a, order, axis=1)
                                 for a in (valid, k_len, v_len, code))
    key, val = (np.take_along_axis(a, order[..., None], axis=1) for a in (key, val))
    return valid, key, k_len, val, v_len, code


def _probe_layout(rng, size, code, seq_len, max_pair):
    """MAD's loop over pair sizes (n, m + 2), with the probe always reachable.

    MAD appends pairs while the sequence so far is shorter than seq_len - probe - max_pair and
    inserts the probe at the first pair boundary at or after a uniform offset in
    [0, seq_len - 2*probe), unless a pair before that boundary has its key. Returns the context
    slot the probe precedes (n,), whether it is inserted (n,) and which context pairs are kept
    (n, m).
    """
    m = size.shape[1] - 2
    probe = size[:, m]
    start = np.cumsum(size[:, :m], axis=1) - size[:, :m]
    limit = (seq_len - probe - max_pair)[:, None]
    offset = rng.integers(0, np.maximum(seq_len - 2 * probe, 1))[:, None]
    # MAD drops the probe when the offset lies beyond the last boundary its loop reaches; put it
    # at that boundary instead.
    reached = np.maximum((start < limit).sum(axis=1) - 1, 0)
    at = np.minimum((start < offset).sum(axis=1), reached)
    before = np.arange(m) < at[:, None]
    present = ~(before & (code[:, :m] == code[:, m:m + 1])).any(axis=1)
    kept = start + np.where(before, 0, (probe * present)[:, None]) < limit
    return at, present, kept


def _scatter(tokens, valid, start, motif, length):
    """Write each valid slot's first `length` motif tokens from `start`; return rows, cols, mask."""
    j = np.arange(motif.shape[2])
    mask = valid[..., None] & (j < length[..., None])
    rows = np.broadcast_to(np.arange(len(tokens))[:, None, None], mask.shape)
    cols = start[..., None] + j
    tokens[rows[mask], cols[mask]] = motif[mask]
    return rows, cols, mask


def fuzzy_in_context_recall(
    num_examples: int,
    rng: np.random.Generator,
    *,
    vocab_size: int = 16,
    seq_len: int = 128,
    k_motif_size: int = 3,
    v_motif_size: int = 3,
    test_split: bool = False,
) -> Examples:
    """MAD fuzzy in-context recall: keys and values are motifs of 1..k (1..v) distinct tokens.

    From athms/mad-lab `mad/data/instances.py::generate_fuzzy_in_context_recall_instance`
    (multi_query=True, `configs/tasks/fuzzy-in-context-recall.yml`). Vocabulary: pad is
    vocab_size-1; keys use 0..(vocab_size-1)//2-1, values the rest below the pad. Each pair draws
    a value length in 1..v_motif_size and motifs of distinct tokens; a repeated key repeats its
    first value. Key lengths are 1..k_motif_size (MAD's training split), or k_motif_size for every
    pair with test_split=True (MAD's test split, is_training=False; cdyn-bench's data layer sets it
    for the validation and test splits). A probe pair with a k_motif_size key (in both splits;
    MAD's training probe key may be shorter) sits among the context pairs, and the sequence ends
    by repeating the probe key and its value (the query). Layout of MAD's loop: pairs are
    appended while the sequence is shorter than seq_len - probe - k_motif_size - v_motif_size;
    the probe goes at the first pair boundary at or after an offset uniform in
    [0, seq_len - 2*probe), unless a pair before that boundary already has its key (that pair
    then serves as the probe). Sequences are left-padded to seq_len + 1 tokens and shifted, so
    T = seq_len.

    Example, `fuzzy_in_context_recall(1, np.random.default_rng(43), vocab_size=8, seq_len=15,
    k_motif_size=2, v_motif_size=2, test_split=True)` (keys 0-2, values 3-6, pad 7; pairs
    (2 1)->(3 4), the probe (0 1)->(3), (2 1)->(3 4), then the query (0 1)->(3)):

        inputs           7    7    2    1    3    4    0    1    3    2    1    3    4    0    1
        targets       -100 -100 -100 -100 -100 -100 -100 -100 -100 -100    3    4 -100 -100    3
        train_targets    7    2    1    3    4    0    1    3    2    1    3    4    0    1    3

    Scored: the value tokens (target positions) of repeated keys that have k_motif_size tokens,
    the only keys whose end the causal context fixes; with test_split=True that is every repeated
    key, as in MAD's test targets. The final query is always scored. Trained on (loss_on='all'):
    every position, the next token, padding included.

    Anchor bug fixed: MAD's probe offset can lie beyond the last pair boundary its loop reaches
    (the loop stops at seq_len - probe - k - v, the offset ranges up to seq_len - 2*probe), and
    then MAD never inserts the probe: 8% of its test sequences at the baseline. Unless the probe
    key was drawn by chance, MAD still scores the query's value, which the sequence never showed
    (2% of test sequences at the baseline, 14% at seq_len 32). Here the probe then goes at that
    last boundary, so every scored value was shown earlier in the sequence.
    """
    _validate_fuzzy(vocab_size, seq_len, k_motif_size, v_motif_size)
    K, pad = k_motif_size, vocab_size - 1
    num_keys = pad // 2
    valid, key, k_len, val, v_len, code = _fuzzy_pairs(rng, num_examples, K, v_motif_size,
                                                       num_keys, pad, seq_len, test_split)
    slot = np.arange(valid.shape[1])
    seen_before = first_occurrence(np.where(valid, code, -1 - slot)) != slot
    scored = valid & seen_before & (k_len == K)

    size = np.where(valid, k_len + v_len, 0)
    end = np.cumsum(size, axis=1)
    start = end - size + (seq_len + 1 - end[:, -1:])
    tokens = np.full((num_examples, seq_len + 1), pad, dtype=np.int64)
    _scatter(tokens, valid, start, key, k_len)
    rows, cols, written = _scatter(tokens, valid, start + k_len, val, v_len)
    is_scored = np.zeros(tokens.shape, dtype=bool)
    hit = written & scored[..., None]
    is_scored[rows[hit], cols[hit]] = True
    targets = np.where(is_scored[:, 1:], tokens[:, 1:], IGNORE)
    return Examples(tokens[:, :-1].copy(), targets, tokens[:, 1:].copy())
