"""cdyn_bench.measures.compute_time: an experiment's cost from its records, reused records free, extended sweeps
and searches apart, written to results/bench/budget.md."""

from __future__ import annotations

import json
from pathlib import Path

from cdyn_bench.measures import compute_time as budget


def write_records(folder: Path, walls: list[float], planned: int, reused: int = 0) -> None:
    for i, wall in enumerate(walls):
        cell = folder / "cells" / f"cell{i}"
        cell.mkdir(parents=True)
        record = {"wall_seconds": wall, "reused_from": "elsewhere/cells/x" if i < reused else ""}
        (cell / "result.json").write_text(json.dumps(record))
    (folder / "cells" / "unfinished").mkdir()  # a run that was stopped: no record, no time
    (folder / "manifest.json").write_text(json.dumps({"planned": [{}] * planned}))


def test_minutes_are_wall_seconds_over_workers_and_copies_cost_nothing(tmp_path):
    findings = tmp_path / "findings"
    write_records(findings / "unstable_evolution" / "records", [9999, 120, 240], planned=4, reused=1)
    write_records(findings / "unstable_evolution_boundaries_identity" / "records", [600], planned=1)
    table = budget.costs(["unstable_evolution"], tmp_path, workers=2).set_index("sweep")
    assert table.loc["unstable_evolution", ["planned", "finished", "trained"]].tolist() == [4, 3, 2]
    assert table.loc["unstable_evolution", "minutes"] == (120 + 240) / 2 / 60
    assert table.loc["unstable_evolution_boundaries", "finished"] == 0  # no folder yet: nothing measured
    assert table.loc["unstable_evolution_boundaries_identity", ["part", "minutes"]].tolist() == ["extended", 5.0]


def test_the_totals_name_the_unfinished_runs_and_the_searched_findings(tmp_path):
    write_records(tmp_path / "findings" / "unstable_evolution" / "records", [120, 240], planned=5)
    write_records(tmp_path / "findings" / "normalization_search" / "records", [60], planned=0)
    (tmp_path / "bench").mkdir()
    text = budget.write(tmp_path, workers=1).read_text()
    assert "budget: 6 min (0.10 h), 3 planned runs not finished" in text and "extended: 0 min (0.00 h)\n" in text
    assert "search: 1 min (0.02 h)" in text and "(so far: normalization;" in text
    assert "finite_state_search" not in text  # a measurement has no sweeps to search
