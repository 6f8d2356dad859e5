"""Extending a search: train the points cdyn_bench.search asks for, round by round, in parallel processes, into
<finding>_search records (what `cdyn-reproduce --search` runs)."""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cdyn_bench import table
from cdyn_bench.search import CAP, LR, PATIENCE, SearchRule, cell_columns, extensions


def train_one(job: tuple[str, dict[str, float], str]) -> str:
    """Train one extension run (a record's config with the train overrides) under `root`; its record path."""
    from cdyn_bench.compose import from_record
    from cdyn_bench.record import read_result
    from cdyn_bench.run import run

    path, overrides, root = job
    cfg = from_record(read_result(Path(path)).config)
    train = dataclasses.replace(cfg.train, num_threads=1, lr=overrides[LR], max_steps=int(overrides[CAP]),
                                patience=int(overrides[PATIENCE]), plateau_delta=overrides["train.plateau_delta"])
    sweep = Path(root).parent.name
    cfg = dataclasses.replace(cfg, train=train, progress=False, wandb="disabled", force=False, reuse=[],
                              sweep_name=sweep)
    try:
        cfg.check()
        return run(cfg, Path(root) / "cells").path
    except Exception as err:  # one failed point is reported, not the end of the search
        return f"error: {type(err).__name__}: {err}".splitlines()[0]


def next_round(dirs: list, out) -> tuple:
    """(the records under `dirs` and `out`, their cell columns)."""
    df, problems = table.load([*map(Path, dirs), Path(out)])
    return df, problems, cell_columns(df, table.config_columns(df), table.NOT_CELL_KEYS)


def plan(dirs: list, out, rule: SearchRule, jobs: int = 2) -> list[str]:
    """What the next round would train, without training: its runs per (lr, step cap) and an estimate of its time,
    each run's template record's wall seconds scaled by the ratio of the step caps, over `jobs` workers (the
    plateau stop can end a run sooner). Only the next round can be known: later ones depend on its results."""
    df, _, cell = next_round(dirs, out)
    if df.empty:
        return ["next round: none yet (no records: the grid runs first)"]
    todo = extensions(df, cell, rule)
    if not todo:
        return ["next round: none (no flagged cell the rule can extend)"]
    records = df.set_index("path")
    seconds = sum(records.at[path, "wall_seconds"] * point[CAP] / records.at[path, CAP] for path, point in todo)
    counts = Counter((point[LR], int(point[CAP])) for _, point in todo)
    return [f"next round: {len(todo)} runs, about {seconds / jobs / 60:.0f} min on {jobs} workers",
            *(f"  lr {lr:g}, {cap:,} steps: {n} runs" for (lr, cap), n in sorted(counts.items()))]


def extend(dirs: list, out, rule: SearchRule, jobs: int = 2, log=print) -> int:
    """Apply the rule to the records under `dirs` and `out` until no cell gets a new point (or max_rounds);
    new records go to `out`/cells. Returns the number of runs trained. Resumable: a point whose record
    exists is not trained again (cdyn_bench.run skips it)."""
    out, trained, done = Path(out), 0, set()
    for round_ in range(1, rule.max_rounds + 1):
        df, problems, cell = next_round(dirs, out)
        for line in problems:
            log(f"warning: {line}")
        todo = [(path, point, str(out)) for path, point in extensions(df, cell, rule)]
        todo = [job for job in todo if (job[0], tuple(sorted(job[1].items()))) not in done]
        if not todo:
            break
        log(f"search round {round_}: {len(todo)} runs")
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for job, result in zip(todo, pool.map(train_one, todo)):
                done.add((job[0], tuple(sorted(job[1].items()))))
                trained += 1
                name = result if result.startswith("error") else Path(result).parent.name
                log(f"  {name} lr={job[1][LR]:g} cap={job[1][CAP]:.0f}")
    return trained
