"""Principle 1 measured: inference memory and time per generated token against context length, per preset.

For each preset, cdyn-run's model (MQAR defaults, initialisation weights, batch 1) is prefilled with a
prompt of L tokens through its own streaming step (LanguageModel.step), then generates tokens one at a
time from its caches. Recorded per L: the floats the caches hold (what inference keeps: the finite
state for a linear readout, the KV cache otherwise; summed over layers, measured from the tensors,
not a formula), the time per generated token (fastest of the repeats), and, at the shortest L, the
largest difference between the streamed logits and one forward pass over the whole sequence.

    cdyn-reproduce finite_state        # writes results/finite_state/finite_state.{csv,json}, then md and png
    cdyn-report results/finite_state --finite-state --out results/finite_state   # md and png from the csv
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from cdyn_bench.compose import compose
from cdyn_bench.finite_state import MEASUREMENTS, SETTINGS
from cdyn_bench.model import LanguageModel
from cdyn_bench.help import option_names

LENGTHS = (64, 256, 1024, 4096, 8192)
VOCAB = 256


@torch.no_grad()
def measure(preset: str, lengths: list[int], steps: int) -> list[dict]:
    torch.manual_seed(0)
    model = LanguageModel(compose(f"model={preset}", "task=mqar").model, VOCAB).eval()
    rows = []
    for L in lengths:
        tokens = torch.randint(0, VOCAB, (1, L + steps), generator=torch.Generator().manual_seed(L))
        logits, caches = model.step(tokens[:, :L])
        times, streamed = [], [logits]
        for t in range(L, L + steps):
            start = time.perf_counter()
            logits, caches = model.step(tokens[:, t:t + 1], caches)
            times.append(time.perf_counter() - start)
            streamed.append(logits)
        row = {"preset": preset, "finite_state": all(b.mixer.finite_state for b in model.blocks), "context": L,
               "cache_floats": sum(c.floats() for c in caches), "state_size": model.state_size(L + steps),
               "ms_per_token": 1e3 * min(times)}
        if L == lengths[0]:
            row["max_abs_diff_vs_forward"] = float((model(tokens) - torch.cat(streamed, 1)).abs().max())
        rows.append(row)
        print(f"{preset:15s} L={L:5d} cache={row['cache_floats']:>10,} floats  {row['ms_per_token']:.2f} ms/token",
              flush=True)
    return rows


def write(out: Path, quick: bool = False, steps: int = 16, threads: int = 1, presets: list[str] | None = None,
          lengths: tuple[int, ...] | None = None) -> Path:
    """Measure `presets` (default every preset of conf/model; with quick softmax and gated) at context `lengths`
    (default LENGTHS; with quick the first two), `steps` generated tokens per length on `threads` threads;
    writes <out>/finite_state.{csv,json}."""
    presets = presets or (["softmax", "gated"] if quick else option_names("model"))
    lengths = lengths or (LENGTHS[:2] if quick else LENGTHS)
    torch.set_num_threads(threads)
    df = pd.DataFrame([row for preset in presets for row in measure(preset, list(lengths), steps)])
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / MEASUREMENTS, index=False)
    settings = {"threads": threads, "machine": platform.machine(), "cores": os.cpu_count(), "steps": steps}
    (out / SETTINGS).write_text(json.dumps(settings, indent=1) + "\n")
    return out / MEASUREMENTS
