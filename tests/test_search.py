"""The search rule: lr-edge and at-cap flags on hand-made records, the extension points, the plateau stop,
an extension end to end, pooling in the report, and the difference tests over seeds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdyn_bench import search, search_runs, stats
from cdyn_bench.config import TrainConfig
from cdyn_bench.record import RunResult, config_hash, run_dir, write_result
from cdyn_bench.report import make_report
from cdyn_bench.table import load
from cdyn_bench.train import plateaued
from helpers import TINY, compose

RULE = search.SearchRule()


def run_row(lr: float, seed: int, vals: list[float], cap: int = 500, status: str = "completed", cell: str = "a",
            target: float = 0.995) -> dict:
    """A flattened record: evaluations every 100 steps with the given validation accuracies."""
    history = [{"step": 100 * (i + 1), "val_accuracy": v} for i, v in enumerate(vals)]
    return {"cell": cell, search.LR: lr, search.CAP: cap, "train.target_accuracy": target, "seed": seed,
            "status": status, "steps": history[-1]["step"], "val_accuracy": vals[-1], "history": history,
            "path": f"{cell}-{lr}-{cap}-{seed}"}


def flags_of(rows: list[dict]) -> dict:
    return search.flags(pd.DataFrame(rows), ["cell"], RULE).iloc[0].to_dict()


def test_a_best_lr_at_the_top_of_the_grid_beating_its_neighbour_is_an_edge():
    rows = [run_row(1e-3, s, [0.3, 0.4, 0.5]) for s in range(3)] + [run_row(3e-3, s, [0.5, 0.7, 0.8]) for s in range(3)]
    got = flags_of(rows)
    assert got["lr_edge"] and got["edge_side"] == "up" and got["best_lr"] == 3e-3 and got["lr_grid"] == "0.001/0.003"


def test_no_edge_within_the_margin_inside_the_grid_or_above_the_target():
    close = [run_row(1e-3, s, [0.30, 0.50, 0.50]) for s in range(3)] + [run_row(3e-3, s, [0.5, 0.52, 0.52]) for s in range(3)]
    assert not flags_of(close)["lr_edge"]
    inside = [run_row(lr, s, [v, v, v]) for lr, v in ((1e-3, 0.3), (3e-3, 0.8), (1e-2, 0.4)) for s in range(3)]
    assert not flags_of(inside)["lr_edge"]
    solved = [run_row(1e-3, s, [0.3, 0.4]) for s in range(3)] + [run_row(3e-3, s, [0.9, 0.995]) for s in range(3)]
    assert not flags_of(solved)["lr_edge"] and flags_of(solved)["steps_to_target_median"] == 200


def test_a_seed_still_rising_at_the_cap_is_at_cap_but_not_one_that_stopped_early_or_diverged():
    rising = [run_row(1e-3, s, [0.3, 0.35, 0.4]) for s in range(3)] + [run_row(3e-3, 0, [0.3, 0.4, 0.45, 0.5, 0.6])]
    rising += [run_row(3e-3, s, [0.4, 0.4, 0.4, 0.4, 0.4]) for s in (1, 2)]
    assert flags_of(rising)["at_cap"]
    flat = [run_row(lr, s, [0.3, 0.31, 0.32, 0.33, 0.34]) for lr in (1e-3, 3e-3) for s in range(3)]
    assert not flags_of(flat)["at_cap"]
    short = [run_row(3e-3, s, [0.3, 0.6], cap=500) for s in range(3)]  # stopped (plateau) before its cap
    assert not flags_of(short)["at_cap"]


def test_each_lr_is_judged_at_the_longest_cap_tried_for_it():
    rows = [run_row(1e-3, s, [0.3, 0.4, 0.5]) for s in range(3)] + [run_row(3e-3, s, [0.5, 0.7, 0.8]) for s in range(3)]
    rows += [run_row(3e-3, s, [0.5] * 14 + [0.6], cap=1500) for s in range(3)]
    got = flags_of(rows)
    assert got["cap"] == 1500 and got["best_val"] == pytest.approx(0.6) and got["lr_edge"]


def test_next_points_go_past_the_edge_and_lengthen_the_cap_within_the_bounds():
    assert search.next_lr(3e-3, True, RULE) == 1e-2 and search.next_lr(1e-3, False, RULE) == 3e-4
    assert search.next_lr(3e-2, True, RULE) is None and search.next_lr(1e-4, False, RULE) is None
    row = {"lr_edge": True, "edge_side": "up", "best_lr": 3e-3, "at_cap": True, "cap": 500}
    assert search.next_points(row, RULE) == [{search.LR: 1e-2, search.CAP: 500}, {search.LR: 3e-3, search.CAP: 1500}]
    stuck = {**row, "best_lr": 3e-2, "cap": 4500}
    assert search.next_points(stuck, RULE) == []
    assert search.limit(stuck, RULE) == "lr bound [0.0001, 0.03]; step ceiling 4500"


def test_the_plateau_stop_waits_patience_evaluations_without_a_gain():
    cfg = TrainConfig(patience=3, plateau_delta=0.01)
    history = [{"val_accuracy": v} for v in (0.1, 0.3, 0.305, 0.30, 0.309)]
    assert plateaued(history, cfg)
    assert not plateaued(history[:-1], cfg) and not plateaued(history[:2] + [{"val_accuracy": 0.32}] * 3, cfg)
    assert not plateaued(history, TrainConfig(patience=0))
    assert search.stop_step([{"step": 100 * (i + 1), **h} for i, h in enumerate(history)], 3, 0.01) == 500


def test_patience_zero_leaves_a_runs_identity_unchanged_and_a_set_patience_changes_it():
    from cdyn_bench.record import config_hash

    base = compose(*TINY)
    assert "patience" not in base.identity()["train"]
    assert config_hash(compose(*TINY, "train.patience=4").identity()) != config_hash(base.identity())


def test_a_run_on_a_plateau_stops_and_says_why(tmp_path):
    from cdyn_bench.run import run

    cfg = compose(*TINY, "train.max_steps=200", "train.eval_every=5", "train.patience=2", "train.plateau_delta=0.5")
    result = run(cfg, tmp_path / "runs")
    assert result.stopped == "plateau" and result.steps == 15


def write_fake(root: Path, lr: float, seed: int, vals: list[float], cap: int, name: str = "gated") -> None:
    config = {"model": {"name": name, "d_model": 16}, "task": {"name": "mqar", "seq_len": 16},
              "train": {"lr": lr, "max_steps": cap, "target_accuracy": 0.995, "num_threads": 1}, "seed": seed}
    digest = config_hash(config)
    history = [{"step": 100 * (i + 1), "train_loss": 1.0, "val_accuracy": v} for i, v in enumerate(vals)]
    directory = run_dir(root / "cells", config, digest)
    write_result(RunResult(config=config, config_hash=digest, status="completed", seed=seed, history=history,
                           steps=history[-1]["step"], metrics={"val_accuracy": vals[-1], "test_accuracy": vals[-1]},
                           run_dir=directory.relative_to(root).as_posix()), directory)


def test_the_report_pools_only_the_cells_it_has_and_judges_each_lr_at_its_longest_cap(tmp_path):
    for seed in range(3):
        write_fake(tmp_path / "base", 1e-3, seed, [0.3, 0.4, 0.5], 500)
        write_fake(tmp_path / "base", 3e-3, seed, [0.5, 0.7, 0.8], 500)
        write_fake(tmp_path / "long", 3e-3, seed, [0.7, 0.9] + [0.999], 1500)
        write_fake(tmp_path / "long", 3e-3, seed, [0.6], 1500, name="softmax")  # a cell the base does not have
    alone = make_report([tmp_path / "base"], tmp_path / "r1")
    assert bool(alone.table["lr_edge"].iloc[0]) and "rest on the search" in alone.search[0]
    pooled = make_report([tmp_path / "base"], tmp_path / "r2", pool=[tmp_path / "long"])
    assert list(pooled.table["model.name"]) == ["gated"] and pooled.search == []
    assert pooled.table["cap"].iloc[0] == 1500 and pooled.table["test_accuracy_mean"].iloc[0] == pytest.approx(0.999)


def test_an_extension_trains_the_next_points_once_and_resumes_without_retraining(tmp_path):
    from cdyn_bench.run import run

    for lr in (1e-3, 3e-3):
        run(compose(*TINY, f"train.lr={lr}", "seed=0", "sweep_name=base"), tmp_path / "base" / "cells")
    rule = search.SearchRule(lr_margin=0.0, rising=0.0, target=1.01, max_rounds=1, max_steps_ceiling=40)
    df, _ = load([tmp_path / "base"])
    cell = search.cell_columns(df, [c for c in df.columns if "." in c], ["seed"])
    planned = search.extensions(df, cell, rule)
    assert planned and all(point[search.PATIENCE] == rule.patience for _, point in planned)
    said = search_runs.plan([tmp_path / "base"], tmp_path / "ext", rule, jobs=1)
    assert said[0].startswith(f"next round: {len(planned)} runs, about ") and not (tmp_path / "ext").exists()
    assert sum(int(line.split(": ")[1].split()[0]) for line in said[1:]) == len(planned)
    assert search_runs.extend([tmp_path / "base"], tmp_path / "ext", rule, jobs=1, log=lambda line: None) == len(planned)
    added = load([tmp_path / "ext"])[0]
    assert len(added) == len(planned) and (added["train.patience"] == rule.patience).all()
    assert search_runs.extend([tmp_path / "base"], tmp_path / "ext", rule, jobs=1, log=lambda line: None) == 0
    assert search_runs.plan([tmp_path / "base"], tmp_path / "ext", rule) == ["next round: none (no flagged cell the rule can extend)"]


def test_every_findings_and_principles_experiment_carries_the_standard_rule():
    rules = {name: compose(f"+experiment={name}").search for name in
             ("normalization", "normalization_long", "unstable_evolution_length", "key_scaling", "readout_selectivity",
              "readout_selectivity_eta_one", "position", "evolution_structure", "mqar_frontier", "mqar_frontier_conv",
              "depth")}
    assert len({repr(rule) for rule in rules.values()}) == 1 and next(iter(rules.values())).max_rounds > 0


def test_welch_t_and_the_bootstrap_interval_on_a_known_answer():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    t, dof = stats.welch(a, b)
    assert t == pytest.approx(-3 / math.sqrt(2 / 3)) and dof == pytest.approx(4.0)
    low, high = stats.bootstrap_interval(a, b)
    assert -5 <= low < high < 0
    assert stats.welch(np.array([0.5, 0.5]), np.array([0.5, 0.5]))[0] == 0.0
    runs = pd.DataFrame({"arm": ["x"] * 3 + ["y"] * 3, "seed": [0, 1, 2] * 2, "test_accuracy": [*a, *b]})
    row = stats.compare(runs, "arm", []).iloc[0]
    assert row["clear"] and row["seeds_a"] == "1.000 2.000 3.000" and row["difference"] == pytest.approx(-3.0)
    # Student's t with 4 degrees of freedom: P(|T| >= 3.674) = 0.0213 (tables), and the 5% point 2.776.
    assert row["p"] == pytest.approx(0.0213, abs=2e-4) and stats.two_sided_p(2.776, 4) == pytest.approx(0.05, abs=1e-4)
    tiny = pd.DataFrame({"arm": ["x"] * 3 + ["y"] * 3, "seed": [0, 1, 2] * 2,
                         "test_accuracy": [0.998, 0.999, 0.331, 1.0, 1.0, 1.0]})
    assert not stats.compare(tiny, "arm", []).iloc[0]["clear"]  # the bootstrap alone would call it


def test_a_comparison_with_one_value_of_the_arm_writes_that_it_has_nothing_to_compare(tmp_path):
    from cdyn_bench.run import run

    for seed in (0, 1):
        run(compose(*TINY, f"seed={seed}", "sweep_name=one_arm"), tmp_path / "runs")
    assert stats.compare(pd.DataFrame({"arm": ["x"], "seed": [0], "test_accuracy": [0.5]}), "arm", []).empty
    report = make_report([tmp_path / "runs"], tmp_path / "report", compare="model.mixer.eta")
    assert "nothing to compare" in (tmp_path / "report" / "compare.md").read_text()
    assert (tmp_path / "report" / "compare.md") in report.files


def test_a_point_the_search_left_half_done_is_finished_before_the_cell_is_judged_again():
    rule = search.SearchRule()
    base = [{"model.name": "gated", "seed": s, search.LR: 1e-3, search.CAP: 500, search.PATIENCE: 0,
             "path": f"base{s}"} for s in (0, 1, 2)]
    added = [{"model.name": "gated", "seed": s, search.LR: 3e-4, search.CAP: 1500, search.PATIENCE: rule.patience,
              "path": f"added{s}"} for s in (0, 1)]
    df = pd.DataFrame(base + added)
    assert search.incomplete_points(df, ["model.name"], rule) == [
        ("base2", {search.LR: 3e-4, search.CAP: 1500, search.PATIENCE: rule.patience,
                   "train.plateau_delta": rule.plateau_delta})]
    assert search.incomplete_points(pd.DataFrame(base), ["model.name"], rule) == []
