"""MAD's protocol (athms/mad-lab, configs/tasks/*.yml and mad/configs.py): each task's baseline and one-factor
changes, and the scales at which cdyn-bench runs them (MAD's own, and the CPU scale). The setting files under
conf/mad_setting are generated from this table by scripts/make_mad_settings.py; the tests read it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SIZES = [6400, 3200, 1600, 800]
MAD = {
    "icr": (dict(vocab_size=16, seq_len=128, num_train=12800),
            dict(vocab_size=[32, 64, 128], seq_len=[256, 512, 1024], num_train=SIZES)),
    "noisy_icr": (dict(vocab_size=32, noise_vocab_size=16, seq_len=128, num_train=12800, frac_noise=0.2),
                  dict(vocab_size=[48, 80, 144], seq_len=[256, 512, 1024], num_train=SIZES,
                       frac_noise=[0.4, 0.6, 0.8])),
    "fuzzy_icr": (dict(vocab_size=16, seq_len=128, num_train=12800, k_motif_size=3, v_motif_size=3),
                  dict(vocab_size=[32, 64, 128], seq_len=[256, 512, 1024], num_train=SIZES)),
    "selective_copy": (dict(vocab_size=16, seq_len=256, num_tokens_to_copy=16, num_train=12800),
                       dict(vocab_size=[32, 64, 128], seq_len=[512, 1024], num_train=SIZES,
                            num_tokens_to_copy=[32, 64, 96])),
    "compression": (dict(vocab_size=16, seq_len=32, num_train=12800),
                    dict(vocab_size=[32, 64, 128], seq_len=[64, 128, 256], num_train=SIZES)),
    "memorization": (dict(vocab_size=256, seq_len=32, num_train=256),
                     dict(vocab_size=[512, 1024, 2048, 4096, 8192])),
}
EPOCHS = 200
LENGTH_KEYS = ("seq_len", "num_tokens_to_copy")


@dataclass(frozen=True)
class Scale:
    """How a scale maps MAD's settings: lengths divided per task, batch size, step cap, split sizes.

    batch_size must equal train.batch_size in the scale's experiment file (a test checks it).
    """

    experiment: str
    batch_size: int
    max_steps: int | None
    num_val: int
    num_test: int
    length_divisor: dict[str, int] = field(default_factory=dict)
    note: str = ""


SCALES = {
    "full": Scale("mad_protocol_full", 128, None, 1280, 1280, note="MAD's own scale"),
    # Recall and copying lengths / 4 keep a cell at minutes on a CPU core; compression / 2 matches
    # the halved width (its difficulty is sequence information per model dimension); memorisation
    # is cheap at MAD's size.
    "cpu": Scale("mad_protocol", 64, 2000, 512, 1280,
                 dict(icr=4, noisy_icr=4, fuzzy_icr=4, selective_copy=4, compression=2),
                 note="CPU scale"),
}


def settings() -> list[tuple[str, str | None, dict]]:
    """(task, changed key or None for the baseline, task keys) for every MAD setting, at MAD's scale."""
    out = []
    for task, (baseline, changes) in MAD.items():
        out.append((task, None, dict(baseline)))
        for key, values in changes.items():
            out += [(task, key, {**baseline, key: value}) for value in values]
    return out


def scaled(task: str, keys: dict, scale: Scale) -> dict:
    divisor = scale.length_divisor.get(task, 1)
    return {k: v // divisor if k in LENGTH_KEYS else v for k, v in keys.items()}


def max_steps(num_train: int, scale: Scale) -> int:
    steps = EPOCHS * math.ceil(num_train / scale.batch_size)
    return steps if scale.max_steps is None else min(steps, scale.max_steps)
