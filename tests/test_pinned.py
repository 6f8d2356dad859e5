"""What the code computes, pinned: each preset's float64 logits at initialisation, each task's first examples,
and the losses of a few float64 training steps, against the numbers in tests/data/pinned.json.

These fail when a change alters what a run computes (a formula, a default, an initialisation, the data
stream, the training loop), and then say what to bump: such a change must bump NUMERICS_VERSION (README,
"Rounding is not a result") and rewrite the pins in the same commit, `python tests/test_pinned.py --write`.
A change that alters only rounding moves float64 numbers far less than 1e-10 and passes unchanged. The
pins record the NUMERICS_VERSION and FORM_VERSIONS they were written under, so a bump without new pins, or
new pins without a bump, fails too.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers import PRESETS, TINY, compose  # noqa: E402
from test_tasks import SMALL  # noqa: E402  (small settings of every task: its first examples are pinned)

from cdyn_bench import FORM_VERSIONS, NUMERICS_VERSION  # noqa: E402
from cdyn_bench.mixer.forms import FORMS  # noqa: E402
from cdyn_bench.tasks import TASKS  # noqa: E402

PINS = Path(__file__).parent / "data" / "pinned.json"
TOLERANCE = 1e-10
VOCAB, T = 12, 10
# The training pin: TINY's run in float64, the mixer in its chunked form over more than one chunk.
TRAINED = ("gated", "deltanet", "softmax")


def preset_logits(preset: str) -> list[float]:
    from cdyn_bench.model import LanguageModel

    torch.manual_seed(0)
    model = LanguageModel(compose(f"model={preset}", "model.d_model=16", "model.mixer.n_heads=2").model, VOCAB).double()
    tokens = torch.randint(0, VOCAB, (1, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(tokens).flatten().tolist()


def task_digest(name: str) -> str:
    ex = TASKS[name](6, np.random.default_rng(0), **SMALL[name])
    arrays = [np.ascontiguousarray(a, dtype=np.int64) for a in (ex.inputs, ex.targets, ex.train_targets)]
    return hashlib.sha256(b"".join(a.tobytes() + str(a.shape).encode() for a in arrays)).hexdigest()


def trained_losses(preset: str) -> list[float]:
    from cdyn_bench.data import TaskData
    from cdyn_bench.model import LanguageModel
    from cdyn_bench.train import train

    cfg = compose(f"model={preset}", *TINY, "train.max_steps=4", "train.eval_every=2", "model.mixer.chunk_size=4")
    torch.manual_seed(cfg.seed)
    data = TaskData(cfg.task, cfg.seed, cfg.train.batch_size)
    model = LanguageModel(cfg.model, data.vocab_size, readout=cfg.task.readout).double()
    outcome = train(model, data, cfg.train, torch.device("cpu"))
    return [row[k] for row in outcome.history for k in ("train_loss", "val_loss")]


def compute() -> dict:
    return {"numerics_version": NUMERICS_VERSION, "form_versions": FORM_VERSIONS,
            "logits": {p: preset_logits(p) for p in PRESETS}, "tasks": {t: task_digest(t) for t in TASKS},
            "trained": {p: trained_losses(p) for p in TRAINED}}


@pytest.fixture(scope="module")
def pins() -> dict:
    return json.loads(PINS.read_text())


BUMP = ("changed what a run computes: bump NUMERICS_VERSION in cdyn_bench/__init__.py (README, 'Rounding is not a "
        "result') and rewrite the pins with `python tests/test_pinned.py --write`")


def test_the_pins_were_written_under_this_numerics_version(pins):
    assert FORM_VERSIONS.keys() == FORMS.keys(), "every form has its own version, and only forms do"
    assert (pins["numerics_version"], pins["form_versions"]) == (NUMERICS_VERSION, FORM_VERSIONS), (
        "the numerics version was bumped without new pins: rewrite them with `python tests/test_pinned.py --write`")


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_logits_are_pinned(pins, preset):
    got, want = torch.tensor(preset_logits(preset)), torch.tensor(pins["logits"][preset])
    assert got.shape == want.shape, f"{preset}: {BUMP}"
    worst = (got - want).abs().max().item()
    assert worst <= TOLERANCE, f"{preset}'s float64 logits at initialisation moved by {worst:.3g}: {BUMP}"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_streams_are_pinned(pins, name):
    assert task_digest(name) == pins["tasks"][name], f"task {name}'s first examples changed: {BUMP}"


@pytest.mark.parametrize("preset", TRAINED)
def test_training_losses_are_pinned(pins, preset):
    got, want = torch.tensor(trained_losses(preset)), torch.tensor(pins["trained"][preset])
    worst = (got - want).abs().max().item()
    assert worst <= TOLERANCE, f"{preset}'s float64 losses over 4 training steps moved by {worst:.3g}: {BUMP}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_pinned.py --write   (rewrites tests/data/pinned.json from this code)")
    torch.set_num_threads(1)
    PINS.parent.mkdir(exist_ok=True)
    PINS.write_text(json.dumps(compute(), indent=1) + "\n")
    print(f"wrote {PINS}")
