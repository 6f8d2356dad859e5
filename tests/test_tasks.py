"""Task generators: token roles, scored positions, solvability, statistics, seeds and errors."""

import ast
import inspect
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from cdyn_bench import tasks
from cdyn_bench.tasks import IGNORE, TASKS
from cdyn_bench.tasks.mad import memorization_map

ROOT = Path(__file__).resolve().parents[1]
DATA_KEYS = {"name", "num_train", "num_val", "num_test", "loss_on", "readout"}

# Small settings that keep every test fast; each test overrides what it studies.
SMALL = {
    "mqar": dict(vocab_size=64, seq_len=32, num_kv_pairs=4),
    "icr": dict(vocab_size=16, seq_len=32),
    "noisy_icr": dict(vocab_size=32, seq_len=32, noise_vocab_size=16, frac_noise=0.4),
    "fuzzy_icr": dict(vocab_size=16, seq_len=48),
    "selective_copy": dict(vocab_size=16, seq_len=40, num_tokens_to_copy=8),
    "compression": dict(vocab_size=16, seq_len=16),
    "memorization": dict(vocab_size=32, seq_len=16),
    "parity": dict(seq_len=24, test_seq_len=48),
    "modular_sum": dict(modulus=5, seq_len=24, test_seq_len=48),
    "group_word": dict(group="A5", seq_len=24, test_seq_len=48),
    "text": dict(seq_len=24),
}
# The state-tracking tasks have no vocab_size: their tokens are the group's elements.
GROUP_ORDER = {"parity": 2, "modular_sum": 5, "group_word": 60}
# Nor has the text task: its tokens are bytes.
VOCAB = {**GROUP_ORDER, "text": 256}


def make(name, n=200, seed=0, **params):
    return TASKS[name](n, np.random.default_rng(seed), **{**SMALL[name], **params})


def scored(examples):
    return examples.targets != IGNORE


def full_tokens(ex):
    """The unshifted sequences of the next-token tasks: inputs plus the last label."""
    return np.concatenate([ex.inputs, ex.train_targets[:, -1:]], axis=1)


def runs(row, is_key):
    """[(is_key, tokens)] maximal runs of key / non-key tokens."""
    out = []
    for tok in row:
        kind = bool(is_key(tok))
        if out and out[-1][0] == kind:
            out[-1][1].append(int(tok))
        else:
            out.append((kind, [int(tok)]))
    return out


# Brute-force solvers: each returns {position: answer} for the positions it recognises as recall
# positions, reading only inputs[:position + 1] (and, for memorisation, a training set).


def solve_mqar(row, num_kv_pairs):
    context = list(row[: 2 * num_kv_pairs])
    return {t: context[context.index(row[t]) + 1] for t in range(2 * num_kv_pairs, len(row))
            if row[t] in context[0::2]}


def solve_recall(row, num_keys):
    answers = {}
    for t, tok in enumerate(row):
        earlier = [j for j in range(t) if row[j] == tok]
        if tok < num_keys and earlier:
            answers[t] = row[earlier[0] + 1]
    return answers


def solve_fuzzy(row, num_keys, pad, k_motif_size):
    memory, key, pair_key, value, answers = {}, (), None, [], {}
    for t, tok in enumerate(row):
        if tok < num_keys:
            if value:
                memory.setdefault(pair_key, tuple(value))
                value = []
            key += (tok,)
            if len(key) == k_motif_size and key in memory:
                answers[t] = memory[key][0]
        elif tok < pad:
            pair_key, key = (key, ()) if key else (pair_key, key)
            value.append(tok)
            known = memory.get(pair_key, ()) if len(pair_key) == k_motif_size else ()
            if len(value) < len(known):
                answers[t] = known[len(value)]
    return answers


def solve_selective_copy(row, vocab_size):
    copy_at = list(row).index(vocab_size - 1)
    content = [tok for tok in row[:copy_at] if tok < vocab_size - 2]
    return {copy_at + 1 + i: tok for i, tok in enumerate(content)}


SOLVERS = {
    "mqar": lambda row, p: solve_mqar(row, p["num_kv_pairs"]),
    "icr": lambda row, p: solve_recall(row, p["vocab_size"] // 2),
    "noisy_icr": lambda row, p: solve_recall(row, (p["vocab_size"] - p["noise_vocab_size"]) // 2),
    "fuzzy_icr": lambda row, p: solve_fuzzy(row, (p["vocab_size"] - 1) // 2, p["vocab_size"] - 1,
                                            p.get("k_motif_size", 3)),
    "selective_copy": lambda row, p: solve_selective_copy(row, p["vocab_size"]),
    "compression": lambda row, p: {t: row[t] for t in range(len(row))},
}


@pytest.mark.parametrize("name", TASKS)
def test_signature_is_plain_keywords(name):
    params = list(inspect.signature(TASKS[name]).parameters.values())
    assert [p.name for p in params[:2]] == ["num_examples", "rng"]
    for p in params[2:]:
        assert p.kind is p.KEYWORD_ONLY and p.annotation in (int, float, bool, str), p
        assert type(p.default) is p.annotation, p


@pytest.mark.parametrize("name", TASKS)
def test_shapes_dtypes_and_token_range(name):
    ex, vocab = make(name), SMALL[name].get("vocab_size", VOCAB.get(name))
    seq_len = SMALL[name]["seq_len"]
    T = seq_len - 1 if name in ("icr", "noisy_icr") else seq_len
    for a in (ex.inputs, ex.targets, ex.train_targets):
        assert a.shape == (200, T) and a.dtype == np.int64
    assert ex.inputs.min() >= 0 and ex.inputs.max() < vocab
    for labels in (ex.targets, ex.train_targets):
        used = labels[labels != IGNORE]
        assert used.min() >= 0 and used.max() < vocab
    assert scored(ex).any(axis=1).all()
    assert np.array_equal(ex.train_targets[scored(ex)], ex.targets[scored(ex)])
    assert make(name, n=0).inputs.shape == (0, T)


def docstring_example(fn):
    """The call and the rows (name -> list of ints) of the example in fn's docstring."""
    doc = inspect.getdoc(fn)
    call = re.search(r"`(\w+)\(1, np\.random\.default_rng\((\d+)\), (.*?)\)`", doc, re.S)
    params = {k.strip(): ast.literal_eval(v) for k, v in
              (item.split("=") for item in re.split(r",\s*", call.group(3)))}
    rows = {m.group(1): [int(x) for x in m.group(2).split()] for m in
            re.finditer(r"^\s*(inputs|targets|train_targets)\s+((?:-?\d+\s*)+)$", doc, re.M)}
    return call.group(1), int(call.group(2)), params, rows


@pytest.mark.parametrize("name", TASKS)
def test_docstring_example_is_what_the_generator_makes(name):
    fn_name, seed, params, rows = docstring_example(TASKS[name])
    assert fn_name == TASKS[name].__name__
    ex = TASKS[name](1, np.random.default_rng(seed), **params)
    assert rows["inputs"] == ex.inputs[0].tolist()
    assert rows["targets"] == ex.targets[0].tolist()
    assert rows.get("train_targets", rows["targets"]) == ex.train_targets[0].tolist()


@pytest.mark.parametrize("name", list(SOLVERS))
def test_solver_finds_exactly_the_scored_positions(name):
    params = {**SMALL[name], "random_non_queries": False} if name == "mqar" else SMALL[name]
    ex = TASKS[name](100, np.random.default_rng(1), **params)
    for row, target in zip(ex.inputs.tolist(), ex.targets.tolist()):
        answers = SOLVERS[name](row, params)
        assert answers == {t: y for t, y in enumerate(target) if y != IGNORE}


def test_mqar_solver_recovers_targets_among_random_non_queries():
    ex = make("mqar", n=100, random_non_queries=True)
    for row, target in zip(ex.inputs.tolist(), ex.targets.tolist()):
        answers = solve_mqar(row, SMALL["mqar"]["num_kv_pairs"])
        assert all(answers[t] == y for t, y in enumerate(target) if y != IGNORE)


def test_memorization_map_is_shared_across_splits_and_learnable():
    train, test = make("memorization", n=500, seed=1), make("memorization", n=100, seed=2)
    learned = dict(zip(train.inputs[:, 0::2].ravel(), train.targets[:, 1::2].ravel()))
    answers = np.vectorize(learned.get)(test.inputs[:, 0::2])
    assert np.array_equal(answers, test.targets[:, 1::2])
    assert (test.targets[:, 0::2] == IGNORE).all()


def test_first_occurrence_and_distinct_integers():
    ids = np.array([[5, 3, 5, 3, 7], [1, 1, 1, 2, 1]])
    assert tasks.first_occurrence(ids).tolist() == [[0, 1, 0, 1, 4], [0, 0, 0, 3, 0]]
    rng = np.random.default_rng(0)
    for k, low, high in [(3, 0, 7), (4, 10, 1000), (30, 0, 200)]:
        draws = tasks.distinct_integers(rng, 20000, k, low, high)
        assert all(len(set(r)) == k for r in draws[:500].tolist())
        assert draws.min() >= low and draws.max() < high
        counts = np.bincount(draws[:, -1] - low, minlength=high - low)
        assert counts.std() < 4 * np.sqrt(counts.mean())


def test_mqar_roles():
    ex = make("mqar", n=300, random_non_queries=False)
    kv, half = 4, 32
    keys, values = ex.inputs[:, 0:2 * kv:2], ex.inputs[:, 1:2 * kv:2]
    assert keys.min() >= 1 and keys.max() < half and values.min() >= half
    assert all(len(set(r)) == kv for r in keys.tolist())
    assert all(len(set(r)) == kv for r in values.tolist())
    rest = ex.inputs[:, 2 * kv:]
    assert ((rest == 0) | scored(ex)[:, 2 * kv:]).all()
    assert (scored(ex).sum(axis=1) == kv).all()


def test_mqar_query_positions_follow_power_a():
    n, kv, seq_len = 4000, 4, 64
    space = (seq_len - 2 * kv) // 2

    def slots(power_a):
        ex = make("mqar", n=n, seq_len=seq_len, num_kv_pairs=kv, power_a=power_a,
                  random_non_queries=False)
        first_key = ex.inputs[:, :1]
        return (np.argmax(ex.inputs[:, 2 * kv:] == first_key, axis=1) // 2,
                (np.nonzero(scored(ex))[1] - 2 * kv) // 2)

    first, all_slots = slots(0.01)
    p = np.arange(1, space + 1) ** (0.01 - 1)
    assert abs(np.mean(first == 0) - p[0] / p.sum()) < 0.03
    assert np.mean(all_slots < space // 4) > 0.5
    first_uniform, all_uniform = slots(1.0)
    assert abs(np.mean(all_uniform < space // 4) - 0.25) < 0.03
    assert first.mean() < first_uniform.mean() - 3


@pytest.mark.parametrize("name", ["icr", "noisy_icr"])
def test_recall_roles(name):
    p = SMALL[name]
    content = p["vocab_size"] - p.get("noise_vocab_size", 0)
    tokens = full_tokens(make(name))
    keys, values = tokens[:, 0::2], tokens[:, 1::2]
    noise = keys >= content
    assert np.array_equal(noise, values >= content)
    assert (keys[~noise] < content // 2).all() and (values[~noise] >= content // 2).all()
    assert (values[~noise] < content).all()
    assert (~noise[:, :-2]).any(axis=1).all() and (~noise[:, -1]).all()


@pytest.mark.parametrize("frac_noise", [0.2, 0.6])
def test_noise_fraction(frac_noise):
    ex = make("noisy_icr", n=2000, seq_len=128, frac_noise=frac_noise)
    slots = full_tokens(ex)[:, 0:-2:2]
    expected = frac_noise * (slots.shape[1] - 1) / slots.shape[1]
    assert abs(np.mean(slots >= 16) - expected) < 0.02


def test_noise_keeps_one_real_pair():
    ex = make("noisy_icr", n=2000, seq_len=8, frac_noise=0.95)
    assert (full_tokens(ex)[:, 0:-2:2] < 16).any(axis=1).all()


def test_fuzzy_motifs():
    K, V = 3, 3
    ex = make("fuzzy_icr", n=300, seq_len=96, k_motif_size=K, v_motif_size=V)
    key_sizes, value_sizes = [], []
    for row in full_tokens(ex).tolist():
        parsed = runs([t for t in row if t != 15], lambda t: t < 7)
        assert parsed[0][0] and not parsed[-1][0] and len(parsed[-2][1]) == K
        for is_key, motif in parsed:
            assert len(set(motif)) == len(motif)
            (key_sizes if is_key else value_sizes).append(len(motif))
    assert np.bincount(key_sizes).tolist()[0] == 0 and len(np.bincount(key_sizes)) == K + 1
    assert min(np.bincount(value_sizes)[1:]) > 0.25 * len(value_sizes) / V
    assert len(np.bincount(value_sizes)) == V + 1


def fuzzy_pairs(row, num_keys, pad):
    """[(key, value)] of an unshifted fuzzy row, pads dropped."""
    parsed = runs([t for t in row if t != pad], lambda t: t < num_keys)
    return [(tuple(k), tuple(v)) for (_, k), (_, v) in zip(parsed[0::2], parsed[1::2])]


def test_fuzzy_test_split_has_full_length_keys_and_scores_every_repeat():
    K = 3
    ex = make("fuzzy_icr", n=300, test_split=True)
    for row, target in zip(full_tokens(ex).tolist(), ex.targets.tolist()):
        pairs = fuzzy_pairs(row, 7, 15)
        assert all(len(key) == K for key, _ in pairs)
        repeats = sum(len(v) for i, (k, v) in enumerate(pairs) if k in [p[0] for p in pairs[:i]])
        assert sum(y != IGNORE for y in target) == repeats
        answers = solve_fuzzy(row[:-1], 7, 15, K)
        assert answers == {t: y for t, y in enumerate(target) if y != IGNORE}
    assert not np.array_equal(ex.inputs, make("fuzzy_icr", n=300).inputs)
    same = make("fuzzy_icr", n=300, test_split=True)
    assert all(np.array_equal(getattr(ex, f), getattr(same, f)) for f in ("inputs", "targets"))


# MAD's baseline test split (vocab 16, seq_len 128, k = v = 3): a line-by-line transcription of
# generate_fuzzy_in_context_recall_instance (multi_query=True, is_training=False) run on 100,000
# sequences gives 4.402 +- 0.007 scored tokens and 4.93 left pads per sequence. 8,000 of ours
# estimate the mean within about 0.025 (sd 2.2 per sequence), so 0.1 is 4 standard errors.
MAD_FUZZY_TEST = dict(scored=4.402, pads=4.93)


def test_fuzzy_test_split_matches_mads_scored_tokens_and_padding():
    ex = TASKS["fuzzy_icr"](8000, np.random.default_rng(0), test_split=True)
    assert abs(scored(ex).sum(axis=1).mean() - MAD_FUZZY_TEST["scored"]) < 0.1
    assert abs((ex.inputs == 15).sum(axis=1).mean() - MAD_FUZZY_TEST["pads"]) < 0.1


@pytest.mark.parametrize("test_split", [False, True])
def test_fuzzy_query_key_is_always_shown_before(test_split):
    # At seq_len 24 MAD never inserts its probe in 21% of the sequences and then, in 20%, scores
    # a query whose key the sequence never showed.
    ex = make("fuzzy_icr", n=500, seq_len=24, test_split=test_split)
    for row in full_tokens(ex).tolist():
        pairs = fuzzy_pairs(row, 7, 15)
        assert pairs[-1] in pairs[:-1]


def test_compression_scores_every_position_unless_told():
    ex = make("compression")
    assert scored(ex).all() and (ex.targets[:, -1] == 15).all()
    old = make("compression", score_compression_token=False)
    assert (old.targets[:, -1] == IGNORE).all() and scored(old)[:, :-1].all()
    assert (old.train_targets == old.inputs).all() and np.array_equal(old.inputs, ex.inputs)


def test_selective_copy_layout():
    ex = make("selective_copy", n=300)
    c, T = 8, 40
    assert (ex.inputs[:, T - c - 1] == 15).all() and (ex.inputs[:, T - c:] == 14).all()
    assert ((ex.inputs[:, : T - c - 1] < 14).sum(axis=1) == c).all()
    assert (ex.inputs[:, T - c - 2] < 14).all()
    assert len(np.unique(np.argmax(ex.inputs < 14, axis=1))) > 5


def test_compression_and_memorization_roles():
    comp = make("compression")
    assert (comp.inputs[:, -1] == 15).all() and (comp.inputs[:, :-1] < 15).all()
    assert (comp.targets == comp.inputs).all() and (comp.train_targets == comp.inputs).all()
    mem, num_keys = make("memorization"), 31 // 2
    assert (mem.inputs[:, 0::2] < num_keys).all() and (mem.inputs[:, 1::2] == 31).all()
    assert (mem.targets[:, 1::2] >= num_keys).all() and (mem.targets[:, 1::2] < 31).all()
    assert len(set(memorization_map(32, 0).tolist())) == num_keys


@pytest.mark.parametrize("name", TASKS)
def test_seeds(name):
    a, b, c = make(name, seed=3), make(name, seed=3), make(name, seed=4)
    for field in ("inputs", "targets", "train_targets"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.inputs, c.inputs)


# Each measure reads a knob's value back from the examples (at the SMALL vocabularies: noisy_icr
# noise ids from 16, fuzzy_icr keys below 7 and pad 15).


def noise_share(ex):
    return np.mean(full_tokens(ex)[:, 0:-2:2] >= 16)


def noise_tokens(ex):
    """Keys sit at even and values at odd positions; noise tokens sit at both."""
    tokens = full_tokens(ex)
    return len(set(tokens[:, 0::2].ravel()) & set(tokens[:, 1::2].ravel()))


def max_run(ex, is_key):
    return max(len(m) for row in full_tokens(ex).tolist()
               for k, m in runs([t for t in row if t != 15], lambda t: t < 7) if k == is_key)


KNOBS = [
    ("mqar", "num_kv_pairs", 2, 6, lambda ex: scored(ex).sum(axis=1).max()),
    ("mqar", "seq_len", 32, 48, lambda ex: ex.inputs.shape[1]),
    ("mqar", "vocab_size", 64, 128, lambda ex: ex.targets.max() + 1),
    ("mqar", "random_non_queries", False, True, lambda ex: np.mean(ex.inputs != 0) > 0.9),
    ("icr", "vocab_size", 16, 32, lambda ex: 2 * (ex.inputs[:, 0::2].max() + 1)),
    ("icr", "seq_len", 32, 64, lambda ex: ex.inputs.shape[1] + 1),
    ("noisy_icr", "frac_noise", 0.2, 0.6, lambda ex: round(noise_share(ex), 1)),
    ("noisy_icr", "noise_vocab_size", 16, 8, noise_tokens),
    ("fuzzy_icr", "k_motif_size", 2, 3, lambda ex: max_run(ex, True)),
    ("fuzzy_icr", "v_motif_size", 2, 3, lambda ex: max_run(ex, False)),
    ("fuzzy_icr", "seq_len", 48, 64, lambda ex: ex.inputs.shape[1]),
    ("selective_copy", "num_tokens_to_copy", 8, 12, lambda ex: scored(ex).sum(axis=1).max()),
    ("selective_copy", "vocab_size", 16, 32, lambda ex: ex.inputs.max() + 1),
    ("compression", "seq_len", 16, 24, lambda ex: scored(ex).sum(axis=1).max()),
    ("compression", "vocab_size", 16, 32, lambda ex: ex.inputs.max() + 1),
    ("memorization", "vocab_size", 32, 64, lambda ex: ex.inputs.max() + 1),
    ("memorization", "seq_len", 16, 32, lambda ex: scored(ex).sum(axis=1).max() * 2),
]


@pytest.mark.parametrize("name, key, low, high, measure", KNOBS,
                         ids=[f"{k[0]}-{k[1]}" for k in KNOBS])
def test_difficulty_knob_changes_what_it_claims(name, key, low, high, measure):
    assert measure(make(name, n=400, **{key: low})) == low
    assert measure(make(name, n=400, **{key: high})) == high


def test_map_seed_changes_the_memorization_map():
    a, b = memorization_map(64, 0), memorization_map(64, 1)
    assert np.array_equal(a, memorization_map(64, 0)) and not np.array_equal(a, b)
    ex = make("memorization", map_seed=1)
    assert np.array_equal(ex.targets[:, 1::2], memorization_map(32, 1)[ex.inputs[:, 0::2]])


BAD = [
    ("parity", dict(test_seq_len=10), "test_seq_len"),
    ("parity", dict(seq_len=0), "seq_len"),
    ("modular_sum", dict(modulus=1), "modulus"),
    ("group_word", dict(group="D4"), "group"),
    ("group_word", dict(split="dev"), "split"),
    ("mqar", dict(num_kv_pairs=40, seq_len=64), "num_kv_pairs"),
    ("mqar", dict(seq_len=63), "seq_len"),
    ("mqar", dict(vocab_size=8, num_kv_pairs=4), "vocab_size"),
    ("mqar", dict(power_a=0.0), "power_a"),
    ("icr", dict(seq_len=31), "seq_len"),
    ("icr", dict(vocab_size=1), "vocab_size"),
    ("noisy_icr", dict(frac_noise=1.0), "frac_noise"),
    ("noisy_icr", dict(frac_noise=-0.1), "frac_noise"),
    ("noisy_icr", dict(noise_vocab_size=0), "noise_vocab_size"),
    ("noisy_icr", dict(vocab_size=17), "vocab_size"),
    ("fuzzy_icr", dict(vocab_size=6), "vocab_size"),
    ("fuzzy_icr", dict(k_motif_size=0), "k_motif_size"),
    ("fuzzy_icr", dict(v_motif_size=0), "v_motif_size"),
    ("fuzzy_icr", dict(seq_len=10), "seq_len"),
    ("selective_copy", dict(num_tokens_to_copy=20), "num_tokens_to_copy"),
    ("selective_copy", dict(seq_len=17), "num_tokens_to_copy"),
    ("selective_copy", dict(num_tokens_to_copy=0), "num_tokens_to_copy"),
    ("selective_copy", dict(vocab_size=2), "vocab_size"),
    ("compression", dict(vocab_size=1), "vocab_size"),
    ("compression", dict(seq_len=1), "seq_len"),
    ("memorization", dict(seq_len=15), "seq_len"),
    ("memorization", dict(vocab_size=2), "vocab_size"),
    ("memorization", dict(map_seed=-1), "map_seed"),
]


@pytest.mark.parametrize("name, params, param", BAD, ids=[f"{b[0]}-{b[2]}" for b in BAD])
def test_invalid_parameters_raise_naming_the_parameter(name, params, param):
    with pytest.raises(ValueError) as err:
        make(name, n=2, **params)
    message = str(err.value)
    assert message.startswith(f"{param}={params.get(param, SMALL[name].get(param))!r}: ")
    assert "\n" not in message


def test_import_needs_numpy_only():
    code = ("import sys, tasks, cdyn_bench.tasks; "
            "print(sorted({'torch', 'hydra', 'omegaconf'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("path", sorted((ROOT / "conf" / "task").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_task_config_params_match_the_generator(path):
    cfg = yaml.safe_load(path.read_text())
    assert cfg["name"] == path.stem and path.stem in TASKS
    signature = inspect.signature(TASKS[path.stem]).parameters
    params = {k: v for k, v in cfg.items() if k not in DATA_KEYS}
    assert set(params) <= set(signature)
    # Hydra resolves interpolations (e.g. map_seed: ${seed}) at run time; the rest are literals.
    params = {k: v for k, v in params.items() if not (isinstance(v, str) and v.startswith("${"))}
    for key, value in params.items():
        assert type(value) is signature[key].annotation, key
    ex = TASKS[path.stem](4, np.random.default_rng(0), **params)
    assert scored(ex).any(axis=1).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", TASKS)
def test_generation_speed(name):
    params = dict(vocab_size=8192, seq_len=256, num_kv_pairs=16) if name == "mqar" else {}
    start = time.perf_counter()
    TASKS[name](100_000 if name == "mqar" else 12_800, np.random.default_rng(0), **params)
    assert time.perf_counter() - start < 2.0
