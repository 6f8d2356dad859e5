"""Measurements that stand in for (or beside) a finding's sweeps, and the summaries of all the records.

MEASURES: name -> Measure, each writing into its finding's results folder (cdyn_bench.experiments names
them). SUMMARIES: name -> write(results) of results/bench/<name>.md, made from every committed record.
Both are run by cdyn-reproduce; each module imports torch or pandas only when it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measure:
    """write(folder, quick) measures into a finding's folder. with_reports: cheap and deterministic, so it is
    redone with the reports (--report-only too); otherwise (timings, training) only when the finding runs."""

    write: Callable[[Path, bool], Path]
    with_reports: bool


def _module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


MEASURES: dict[str, Measure] = {
    "score_variance": Measure(lambda folder, quick: _module("score_variance").write(folder, seeds=1 if quick else 5),
                              with_reports=True),
    "noise_share": Measure(lambda folder, quick: _module("noise_share").write(folder), with_reports=True),
    "inference_cost": Measure(lambda folder, quick: _module("inference_cost").write(folder, quick), with_reports=False),
    "coefficient_maps": Measure(lambda folder, quick: _module("coefficient_maps").write(folder, quick),
                                with_reports=False),
    "transfer": Measure(lambda folder, quick: _module("transfer").write(folder), with_reports=True),
    "text_sample_weights": Measure(lambda folder, quick: _module("text_sample").train(folder, quick), with_reports=False),
    "text_sample": Measure(lambda folder, quick: _module("text_sample").write(folder, quick), with_reports=True),
}

SUMMARIES: dict[str, Callable[[Path], Path]] = {
    "budget": lambda results: _module("compute_time").write(results),
    "search_status": lambda results: _module("search_status").write(results),
    "plateau_stop": lambda results: _module("plateau_stop").write(results),
}
