"""cdyn-report's views other than the table: each is one function (records folders, out folder) -> (a table or
None, the files written), registered in VIEWS with the help of its flag; cdyn-report builds its flags from
VIEWS. A new view is a function and one entry. The principle card against the outcomes lives here; the
others in their own modules (spectra, maps, finite_state), imported when their view is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cdyn_bench.record import read_result
from cdyn_bench.table import find_records


def principles_table(dirs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per record and checkable prediction: the prediction, the outcome, held or failed;
    per prediction and value: runs, held, failed) from the cards the records carry (a record written
    before cards were recorded gets its card from its config: the card depends on nothing else)."""
    from cdyn_bench.compose import from_record
    from cdyn_bench.principles import card_record, outcome_check

    rows = []
    for path in find_records(dirs):
        try:
            result = read_result(path)
        except ValueError:
            continue
        accuracy = result.metrics.get("test_accuracy", math.nan)
        predictions = result.principles or card_record(from_record(result.config))
        for name, value in predictions.items():
            verdict = outcome_check(name, value, result.status, accuracy, result.config["task"]["name"])
            if verdict is not None:
                rows.append({"prediction": name, "value": value, "task.name": result.config["task"]["name"],
                             "model.name": result.config["model"]["name"], "status": result.status,
                             "test_accuracy": accuracy, "verdict": verdict, "run_dir": result.run_dir})
    runs = pd.DataFrame(rows, columns=["prediction", "value", "task.name", "model.name", "status", "test_accuracy",
                                       "verdict", "run_dir"])
    counts = (runs.assign(held=runs["verdict"] == "held", failed=runs["verdict"] == "failed")
              .groupby(["prediction", "value"], sort=True).agg(runs=("verdict", "size"), held=("held", "sum"),
                                                               failed=("failed", "sum")).reset_index())
    return runs, counts


def write_principles(dirs: list[Path], out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """principles.csv (every checked prediction of every run) and principles.md (held / failed counts)."""
    runs, counts = principles_table(dirs)
    if runs.empty:
        raise ValueError(f"no record under {', '.join(map(str, dirs))} carries a checkable prediction")
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "principles.csv", index=False)
    failed = runs[runs["verdict"] == "failed"]
    text = ["# The principle card against the outcomes", "",
            "Predictions made before training (cdyn-explain; every record carries its card) beside what the runs "
            "did: growth = overflow claims a divergence, bounded or normalised claim none; order = invariant claims "
            "that an order-dependent task stays unsolved (test accuracy below 0.9); transitions = positive_real "
            "claims that running parity stays unsolved at the test length.", "",
            counts.to_markdown(index=False), ""]
    if not failed.empty:
        text += ["Where a prediction failed:", "", failed.drop(columns="verdict").to_markdown(index=False), ""]
    (out / "principles.md").write_text("\n".join(text))
    return counts, [out / "principles.csv", out / "principles.md"]


@dataclass(frozen=True)
class View:
    """One `cdyn-report --<flag>` view: what its flag's help says, and the function that writes it."""

    help: str
    write: Callable[[list[Path], Path], tuple[pd.DataFrame | None, list[Path]]]


def write_spectra(dirs: list[Path], out: Path):
    from cdyn_bench.spectra import write_spectra as write

    return write(dirs, out)


def write_maps(dirs: list[Path], out: Path):
    from cdyn_bench.maps import write_maps as write

    return write(dirs, out)


def write_finite_state(dirs: list[Path], out: Path):
    from cdyn_bench.finite_state import write_finite_state as write

    return write(dirs, out)


VIEWS: dict[str, View] = {
    "principles": View("instead of the table: each record's principle card (cdyn-explain) beside its outcome, with "
                       "where the predictions held and failed (principles.{csv,md})", write_principles),
    "spectra": View("instead of the table: eigenvalue-magnitude spectra at init and trained of the runs that saved "
                    "their weights (train.save_weights=true): spectra.{csv,md,png}", write_spectra),
    "maps": View("instead of the table: coefficient maps alpha_ij at init and trained, per layer and head, on a test "
                 "sequence with the task's roles marked, for runs that saved their weights", write_maps),
    "finite_state": View("instead of the table: principle 1's inference memory and time per token against context "
                         "length, from the finite_state.{csv,json} that cdyn-reproduce finite_state measured in DIR",
                         write_finite_state),
}
