"""What a number of bits per character reads like: samples of the transfer experiment's best and worst arms.

The two arms are chosen on validation bits per character (mean over seeds at each arm's chosen lr:
cdyn_bench.measures.transfer.chosen); seed 0 of each is trained again with train.save_weights (the config
equals its record's, hash for hash, so the numbers do too on this machine) into
results/transfer/transfer_text/samples/records, and `cdyn-generate` continues the same prompt with the same
sampling seed. The weights are committed, so sample.md regenerates without training.

    cdyn-reproduce transfer_text     # trains what is missing (train), then writes samples/sample.md (write)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cdyn_bench import search
from cdyn_bench.measures.transfer import SWEEP, chosen
from cdyn_bench.record import RESULT, WEIGHTS, read_result

PROMPT, LENGTH, TEMPERATURE, SEED = "def ", 400, 0.8, 0


def samples_dir(folder: Path) -> Path:
    return folder / SWEEP / "samples"


def picks(results: Path) -> list[Path]:
    """The records of seed 0 of the arm with the fewest and of the arm with the most validation bits per character."""
    from cdyn_bench import table

    runs, _ = chosen(results)
    if runs.empty:
        return []
    cell, _ = table.judged_keys(runs)
    ids = search.cell_ids(runs, cell)
    means = runs.groupby(ids)["val_bits_per_char"].mean().dropna()
    return [Path(runs.loc[(ids == arm) & (runs["seed"] == 0), "path"].iloc[0]) for arm in (means.idxmin(), means.idxmax())]


def train(folder: Path, quick: bool = False) -> Path:
    """Seed 0 of the best and the worst arm again, with their weights (what is missing)."""
    from cdyn_bench.compose import from_record
    from cdyn_bench.run import run

    out = samples_dir(folder) / "records"
    for path in picks(folder.parent):
        cfg = from_record(read_result(path).config)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, save_weights=True, num_threads=1),
                                  progress=False, wandb="disabled")
        done = run(cfg, out / "runs")
        print(f"text sample weights: {done.run_dir} ({'found' if done.skipped else 'trained'})", flush=True)
    return out


def write(folder: Path, quick: bool = False) -> Path:
    """samples/sample.md: each saved arm's config, its bits per character and its continuation of PROMPT."""
    from cdyn_bench.generate import generate

    out = samples_dir(folder)
    found = sorted((out / "records").glob(f"runs/*/{RESULT}"))
    found = [p for p in found if (p.parent / WEIGHTS["trained"]).exists()]
    if not found:
        return out
    lines = ["# Samples of the transfer experiment's best and worst arm (on validation bits per character)", "",
             f"`cdyn-generate <run> --prompt {PROMPT!r} --length {LENGTH} --temperature {TEMPERATURE} --seed {SEED}` "
             "on seed 0 of each arm, trained again with its weights saved (cdyn_bench.measures.text_sample).", ""]
    for path in sorted(found, key=lambda p: read_result(p).metrics.get("val_bits_per_char", 0.0)):
        result = read_result(path)
        mixer = result.config["model"]["mixer"]
        shown = ("A", "phi", "eta", "head_dim", "scale_b") + (("gamma",) if mixer.get("A") == "fixed" else ())
        knobs = ", ".join(f"{k}={mixer[k]}" for k in shown if k in mixer)
        text = generate(path.parent, PROMPT, LENGTH, TEMPERATURE, SEED)
        lines += [f"## {result.config['model']['name']} ({knobs}), lr {result.config['train']['lr']:g}: "
                  f"{result.metrics['test_bits_per_char']:.3f} test bits per character", "", "```", text, "```", ""]
    (out / "sample.md").write_text("\n".join(lines))
    return out / "sample.md"
