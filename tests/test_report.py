"""cdyn-report on hand-made records: best lr per cell, seed statistics, diverged runs, broken records, files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cdyn_bench import NUMERICS_VERSION, figures
from cdyn_bench.record import RESULT, RunResult, config_hash, run_dir, write_result
from cdyn_bench.report import make_report
from cdyn_bench.report_figures import with_condition
from cdyn_bench.table import aggregate, build, load, markdown, select_best, swept_keys
from cdyn_bench.sweep import Cell, Manifest, write_manifest

CDYN_REPORT = str(Path(sys.executable).parent / "cdyn-report")
MODELS = {"gated": {"d_model": 16, "mixer": {"A": "scalar_gate"}}, "softmax": {"d_model": 16, "mixer": {"A": "identity"}}}


def fake_run(root: Path, model: str, lr: float, seed: int, val: float, test: float, status: str = "completed",
             numerics_version: int = NUMERICS_VERSION, **extra) -> RunResult:
    """Write the record of a run that never trained under root/cells; metrics and status as given."""
    config = {"model": {"name": model, **MODELS[model]}, "task": {"name": "mqar", "seq_len": 16},
              "train": {"lr": lr, "weight_decay": 0.1, "num_threads": 1}, "seed": seed, "sweep_name": "t", **extra}
    digest = config_hash(config)
    history = [{"step": s, "train_loss": 3.0 - s / 10, "val_accuracy": val * s / 20} for s in (10, 20)]
    directory = run_dir(root / "cells", config, digest)
    result = RunResult(config=config, config_hash=digest, status=status, seed=seed, history=history, steps=20,
                       metrics={"val_accuracy": val, "test_accuracy": test, "test_macro_accuracy": test,
                                "train_loss": 1.0}, diverged_at=3 if status == "diverged" else None,
                       train_seconds=1.0, tokens_per_s=1234.4 + seed, n_params=100, state_size=64,
                       numerics_version=numerics_version,
                       run_dir=directory.relative_to(root).as_posix())
    write_result(result, directory)
    return result


@pytest.fixture
def grid(tmp_path) -> Path:
    """gated x {lr 1e-3, 3e-3} x 3 seeds (3e-3 better on validation); softmax diverges at 3e-3 for two seeds."""
    for seed in range(3):
        fake_run(tmp_path, "gated", 1e-3, seed, val=0.5, test=0.4 + seed / 100)
        fake_run(tmp_path, "gated", 3e-3, seed, val=0.8, test=0.7 + seed / 100)
        fake_run(tmp_path, "softmax", 1e-3, seed, val=0.6, test=0.6)
        status = "diverged" if seed < 2 else "completed"
        fake_run(tmp_path, "softmax", 3e-3, seed, val=0.9 if seed == 2 else math.nan, test=0.95, status=status)
    return tmp_path


def test_swept_keys_are_the_varying_keys_without_preset_knobs_or_seed(grid):
    df, problems = load([grid])
    assert not problems and len(df) == 12
    assert swept_keys(df) == ["model.name", "train.lr"]


def test_select_best_keeps_all_seeds_of_the_best_mean_validation_setting(grid):
    df, _ = load([grid])
    best = select_best(df, ["task.name", "model.name"], ["train.lr"])
    chosen = best.groupby("model.name")["train.lr"].unique().map(list).to_dict()
    # softmax 3e-3 has one completed seed at 0.9 but two diverged ones (scored 0): 1e-3 wins.
    assert chosen == {"gated": [3e-3], "softmax": [1e-3]} and len(best) == 6


def test_aggregate_counts_a_diverged_seed_as_a_failed_run(grid):
    df, _ = load([grid])
    summary = aggregate(df, ["model.name", "train.lr"]).set_index(["model.name", "train.lr"])
    softmax_fast = summary.loc[("softmax", 3e-3)]
    assert softmax_fast["n"] == 3 and softmax_fast["n_diverged"] == 2
    # Over all seeds the two diverged ones count 0; over the completed seed alone it is 0.95.
    assert softmax_fast["test_accuracy_mean"] == pytest.approx(0.95 / 3)
    assert softmax_fast["test_accuracy_std"] == pytest.approx(pd.Series([0.0, 0.0, 0.95]).std())
    assert softmax_fast["test_accuracy_completed_mean"] == pytest.approx(0.95)
    gated_fast = summary.loc[("gated", 3e-3)]
    assert gated_fast["test_accuracy_mean"] == pytest.approx(0.71)
    assert gated_fast["test_accuracy_std"] == pytest.approx(pd.Series([0.7, 0.71, 0.72]).std())


def test_diverged_seeds_of_the_chosen_setting_stay_in_the_table_and_mad_score(tmp_path):
    # lr 1e-3: seeds {0.99, diverged, diverged}; lr 1e-4: 0.30 for every seed. Validation mean with
    # diverged = 0 is 0.33 against 0.30, so 1e-3 is chosen, and its table mean is 0.33, not 0.99.
    for seed in range(3):
        fake_run(tmp_path, "gated", 1e-4, seed, val=0.30, test=0.30)
        if seed == 0:
            fake_run(tmp_path, "gated", 1e-3, seed, val=0.99, test=0.99)
        else:
            fake_run(tmp_path, "gated", 1e-3, seed, val=math.nan, test=0.5, status="diverged")
    report = make_report([tmp_path], tmp_path / "report", mad=True)
    (row,) = report.table.to_dict("records")
    assert row["train.lr"] == 1e-3 and row["n_diverged"] == 2
    assert row["test_accuracy_mean"] == pytest.approx(0.33) and row["test_accuracy_completed_mean"] == pytest.approx(0.99)
    assert report.mad["mad_score"].item() == pytest.approx(0.33)
    line = markdown(report.table, report.keys).splitlines()[2]
    assert "0.3300" in line and "0.9900" in line and "2/3" in line


def test_table_has_explicit_columns_and_markdown_aligns(grid):
    df, _ = load([grid])
    tab, cell, over = build(df)
    assert cell == ["task.name", "model.name"] and over == ["train.lr"]
    assert list(tab.columns[:3]) == ["task.name", "model.name", "train.lr"] and len(tab) == 2
    lines = markdown(tab, cell + over).splitlines()
    assert len({len(line) for line in lines}) == 1 and lines[1].startswith("|---")
    assert "0.7100 ± 0.0100" in lines[2]
    # Throughput per cell: the mean over its seeds (1234.4 + 0, 1, 2).
    assert lines[0].rstrip(" |").endswith("tokens/s") and lines[2].rstrip(" |").endswith(" 1,235")


def test_all_diverged_cell_reads_zero_with_its_diverged_count(tmp_path):
    for seed in range(2):
        fake_run(tmp_path, "gated", 1e-3, seed, val=0.5, test=0.5)
        fake_run(tmp_path, "softmax", 1e-3, seed, val=math.nan, test=0.3, status="diverged")
    report = make_report([tmp_path], tmp_path / "report")
    row = report.table.set_index("model.name").loc["softmax"]
    assert row["n_diverged"] == 2 and row["test_accuracy_mean"] == 0.0
    assert math.isnan(row["test_accuracy_completed_mean"])
    softmax_line = next(line for line in markdown(report.table, report.keys).splitlines() if "softmax" in line)
    assert "2/2" in softmax_line and "0.0000 ± 0.0000" in softmax_line and "0.3" not in softmax_line


def test_heatmap_slices_on_validation_and_shows_test(tmp_path):
    # Two weight decays per (model, lr): wd 0.0 is best on validation, wd 0.1 best on test.
    summary = pd.DataFrame({
        "model.name": ["gated"] * 2, "train.lr": [1e-3] * 2, "train.weight_decay": [0.0, 0.1],
        "val_accuracy_mean": [0.9, 0.5], "test_accuracy_mean": [0.6, 0.95], "n": [3, 3], "n_diverged": [0, 0],
    })
    best = figures.on_validation(summary, ["model.name", "train.lr"])
    assert best["train.weight_decay"].tolist() == [0.0]
    fig = figures.heatmap_figure(summary, "model.name", "train.lr", "t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.60"]
    figures.plt.close(fig)


def test_report_writes_tables_and_figures(grid, tmp_path):
    out = tmp_path / "out"
    report = make_report([grid], out, heat=["model.name", "train.lr"])
    names = sorted(p.name for p in report.files)
    assert names == ["accuracy_vs_train.lr.png", "curves.png", "divergence_vs_train.lr.png", "heatmap_model.name_train.lr.png",
                     "table.csv", "table.md", "table.parquet"]
    assert all((out / n).stat().st_size > 0 for n in names)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "table.parquet"), report.table)
    with pytest.raises(ValueError, match="not a config key"):
        make_report([grid], out, x="model.nmae")


def test_broken_records_are_one_warning_line_each_naming_the_path(grid):
    paths = sorted(grid.rglob(RESULT))
    paths[0].write_text(paths[0].read_text()[:50])
    paths[1].write_text('{"status": "running"}')
    paths[2].write_text(json.dumps({**json.loads(paths[2].read_text()), "metrics": None}))
    paths[3].write_bytes(bytes(range(256)) * 4)
    paths[4].write_text(json.dumps({**json.loads(paths[4].read_text()), "metrics": {"test_accuracy": "high"}}))
    proc = subprocess.run([CDYN_REPORT, str(grid)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 5 and all(str(p) in w for p, w in zip(paths, warnings))
    assert "Traceback" not in proc.stderr and "| gated" in proc.stdout
    assert (grid / "report" / "table.csv").exists()


def test_a_table_that_mixes_numerics_versions_warns(tmp_path):
    fake_run(tmp_path, "gated", 1e-3, 0, val=0.5, test=0.5, numerics_version=NUMERICS_VERSION - 1)
    fake_run(tmp_path, "gated", 1e-3, 1, val=0.5, test=0.5)
    report = make_report([tmp_path], tmp_path / "report")
    assert any("mix numerics versions" in p for p in report.problems)


def test_records_are_valid_json_and_readable_by_the_group(tmp_path):
    result = fake_run(tmp_path, "gated", 1e-3, 0, val=math.nan, test=0.5)
    path = tmp_path / result.run_dir / RESULT
    payload = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert payload["metrics"]["val_accuracy"] is None
    assert path.stat().st_mode & 0o044 == 0o044


def test_a_moved_sweep_reports_without_warnings(tmp_path):
    sweep = tmp_path / "before"
    results = [fake_run(sweep, "gated", 1e-3, seed, val=0.5, test=0.5) for seed in range(2)]
    cells = [Cell(i, [f"seed={i}"], r.run_dir, r.config_hash) for i, r in enumerate(results)]
    write_manifest(Manifest(str(sweep), "basic", "basic", ["seed=0,1"], cells))
    assert "before" not in (sweep / "manifest.json").read_text()
    moved = tmp_path / "after"
    sweep.rename(moved)
    assert make_report([moved], tmp_path / "report").problems == []
    (moved / results[1].run_dir / RESULT).unlink()
    assert "1 of 2 planned cells" in make_report([moved], tmp_path / "report").problems[0]


def test_no_records_is_an_error_line(tmp_path):
    proc = subprocess.run([CDYN_REPORT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "no finished run records" in proc.stderr


def test_wandb_offline_logging_never_fails_the_report(grid, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_SILENT", "true")
    report = make_report([grid], tmp_path / "out", wandb="offline")
    assert len(report.table) == 2 and list((tmp_path / "out" / "wandb").glob("offline-run-*"))


def test_mad_score_is_the_mean_over_settings_of_the_best_on_validation(tmp_path):
    # Two settings (seq_len 16, 32); in each, the lr with the better validation accuracy is chosen.
    for seq_len, (test_a, test_b) in {16: (0.5, 0.9), 32: (0.7, 0.3)}.items():
        task = {"name": "mqar", "seq_len": seq_len}
        fake_run(tmp_path, "gated", 1e-3, 0, val=0.2 if seq_len == 16 else 0.8, test=test_a, task=task)
        fake_run(tmp_path, "gated", 3e-3, 0, val=0.6 if seq_len == 16 else 0.1, test=test_b, task=task)
    report = make_report([tmp_path], tmp_path / "report", mad=True)
    (row,) = report.mad.to_dict("records")
    assert row["settings"] == 2 and row["mad_score"] == pytest.approx((0.9 + 0.7) / 2)
    assert (tmp_path / "report" / "mad_score.md").exists()


def test_the_table_reports_the_spread_of_seeds_as_std_and_range(grid):
    df, _ = load([grid])
    summary = aggregate(df, ["model.name", "train.lr"]).set_index(["model.name", "train.lr"])
    assert summary.loc[("gated", 3e-3), "test_accuracy_range"] == pytest.approx(0.02)
    assert summary.loc[("softmax", 3e-3), "test_accuracy_range"] == pytest.approx(0.95)  # diverged seeds count 0
    assert "seed range" in markdown(*build(df)[:2]).splitlines()[0]


def test_diagnostics_are_the_largest_over_evaluations_divergence_and_seeds(tmp_path):
    extremes = {"log_alpha_max": 1.0, "score_abs_max": 2.0, "log_eta_max": 3.0, "log_eig_abs_max": 0.0}
    a = fake_run(tmp_path, "gated", 1e-3, 0, val=0.5, test=0.5)
    a.history = [{**row, **extremes, "log_alpha_max": 1.0 + i} for i, row in enumerate(a.history)]
    a.grad_norm_max = 4.0
    write_result(a, tmp_path / a.run_dir)
    b = fake_run(tmp_path, "gated", 1e-3, 1, val=0.5, test=0.5, status="diverged")
    b.grad_norm_max, b.divergence = 1.0, {"step": 3, "loss": None, "grad_norm": 7.0, **extremes, "score_abs_max": 9.0}
    write_result(b, tmp_path / b.run_dir)
    (row,) = make_report([tmp_path], tmp_path / "report").table.to_dict("records")
    assert row["grad_norm_max"] == 7.0 and row["diverged_at_median"] == 3
    assert row["log_alpha_max"] == 2.0 and row["score_abs_max"] == 9.0 and row["log_eta_max"] == 3.0
    # A nan gradient norm at the divergence (stored as null) keeps the run's finite largest; an overflow
    # (stored as 1e308) reads as inf.
    b.divergence["grad_norm"] = None
    write_result(b, tmp_path / b.run_dir)
    df, _ = load([tmp_path])
    assert df.set_index("seed").loc[1, "grad_norm_max"] == 1.0
    b.divergence["log_eta_max"] = 1e308
    write_result(b, tmp_path / b.run_dir)
    report = make_report([tmp_path], tmp_path / "report")
    assert " inf " in markdown(report.table, report.keys).splitlines()[2]


def test_where_keeps_the_matching_records_and_names_a_bad_condition(grid, tmp_path):
    report = make_report([grid], tmp_path / "r", where=["model.name=gated"])
    assert list(report.table["model.name"]) == ["gated"]
    report = make_report([grid], tmp_path / "r", where=["train.lr=1e-3", "model.name=gated,softmax"])
    assert sorted(report.table["model.name"]) == ["gated", "softmax"] and "train.lr" not in report.keys
    for bad, message in [("model.name", "expected KEY=VALUE"), ("model.nme=gated", "not a config key"),
                         ("model.name=s6", "no record has model.name in")]:
        with pytest.raises(ValueError, match=message):
            make_report([grid], tmp_path / "r", where=[bad])
    out = subprocess.run([CDYN_REPORT, str(grid), "--out", str(tmp_path / "c"), "--where", "model.name=s6"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.strip().count("\n") == 0 and "model.name" in out.stderr


def test_a_divergence_figure_is_drawn_when_a_run_diverged(grid, tmp_path):
    files = make_report([grid], tmp_path / "r", x="train.lr").files
    assert tmp_path / "r" / "divergence_vs_train.lr.png" in files
    calm = make_report([grid], tmp_path / "calm", where=["model.name=gated"]).files
    assert not any(p.name.startswith("divergence") for p in calm)


def test_a_report_rewritten_in_its_folder_leaves_only_its_own_figures(grid, tmp_path):
    out = tmp_path / "r"
    make_report([grid], out, x="train.lr")
    (out / "notes.png").write_bytes(b"not a report figure")
    files = make_report([grid], out, where=["model.name=gated"]).files  # another x, no divergence
    assert sorted(out.glob("*.png")) == sorted([*(p for p in files if p.suffix == ".png"), out / "notes.png"])
    assert not (out / "divergence_vs_train.lr.png").exists()


def test_the_frontier_figure_puts_state_size_on_x_with_chosen_series(grid, tmp_path):
    files = make_report([grid], tmp_path / "f", x="state_size", series=["model.name", "task.seq_len"]).files
    assert tmp_path / "f" / "accuracy_vs_state_size.png" in files  # task.seq_len does not vary: one value per line
    with pytest.raises(ValueError, match="or one of state_size"):
        make_report([grid], tmp_path / "f", x="size")
    with pytest.raises(ValueError, match="not a config key"):
        make_report([grid], tmp_path / "f", series=["state_size"])


def test_noise_mass_is_averaged_per_cell_and_drawn(tmp_path):
    for seed, share in enumerate([0.1, 0.3]):
        run = fake_run(tmp_path, "gated", 1e-3, seed, val=0.5, test=0.5)
        run.metrics.update(noise_mass=share, noise_mass_last_layer=share / 2)
        write_result(run, tmp_path / run.run_dir)
    fake_run(tmp_path, "softmax", 1e-3, 0, val=0.5, test=0.5)
    report = make_report([tmp_path], tmp_path / "r")
    rows = report.table.set_index("model.name")
    assert rows.loc["gated", "noise_mass_mean"] == pytest.approx(0.2) and math.isnan(rows.loc["softmax", "noise_mass_mean"])
    assert rows.loc["gated", "noise_mass_last_layer_mean"] == pytest.approx(0.1)
    assert any(p.name.startswith("noise_mass_vs_") for p in report.files)
    assert "noise mass" in markdown(report.table, report.keys).splitlines()[0]


def test_where_matches_numbers_as_numbers():
    from cdyn_bench.table import matches

    assert matches(1.0, ["1.0"]) and matches(1.0, ["1"]) and matches(2.0, ["2"]) and matches(0.003, ["3e-3"])
    assert matches(True, ["True"]) and matches("exp", ["exp", "identity"])
    assert not matches(1.05, ["1"]) and not matches("1", ["2"]) and not matches(True, ["1"])


def test_condition_names_the_factor_each_run_changed_from_the_baseline(tmp_path):
    """Three seeds at the baseline (seq_len 16, lr 1e-3), one factor changed at a time: seq_len, then lr."""
    for seed in range(3):
        fake_run(tmp_path, "gated", 1e-3, seed, val=0.5, test=0.5)
        fake_run(tmp_path, "gated", 1e-3, seed, val=0.5, test=0.3, task={"name": "mqar", "seq_len": 32})
        fake_run(tmp_path, "softmax", 3e-3, seed, val=0.5, test=0.9)
    df, _ = load([tmp_path])
    labelled = with_condition(df, ["task.seq_len", "train.lr", "model.name"])
    assert list(labelled["condition"].cat.categories) == ["baseline", "lr=0.003, name=softmax", "seq_len=32"]
    assert labelled.groupby("condition", observed=True)["test_accuracy"].mean().to_dict() == pytest.approx(
        {"baseline": 0.5, "lr=0.003, name=softmax": 0.9, "seq_len=32": 0.3})
    files = make_report([tmp_path], tmp_path / "r", x="condition").files
    assert tmp_path / "r" / "accuracy_vs_condition.png" in files


def test_an_accuracy_figure_with_more_lines_than_colours_tells_every_line_apart():
    summary = pd.DataFrame({"model.name": [f"m{i:02d}" for i in range(14)], "x": 1.0,
                            "test_accuracy_mean": 0.5, "test_accuracy_std": 0.1})
    records = summary.rename(columns={"test_accuracy_mean": "test_accuracy"}).assign(status="completed")
    fig = figures.accuracy_figure(records, summary, "x", ["model.name"], "t")
    lines = [line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    styles = {(line.get_color(), line.get_marker(), line.get_linestyle()) for line in lines}
    figures.plt.close(fig)
    assert len(lines) == 14 and len(styles) == 14


def test_figure_titles_name_the_records_kept(grid, tmp_path, monkeypatch):
    titles = []
    drawn = figures.accuracy_figure
    monkeypatch.setattr(figures, "accuracy_figure", lambda *args, **kw: titles.append(args[4]) or drawn(*args, **kw))
    make_report([grid], tmp_path / "r", where=["model.name=gated", "train.lr=1e-3,3e-3"])
    assert titles and all("; name=gated, lr=1e-3,3e-3" in title for title in titles)
    make_report([grid], tmp_path / "all")
    assert "name=" not in titles[-1]


def test_against_conditions_the_heat_map_is_condition_by_series_with_one_value_per_condition(tmp_path, monkeypatch):
    accuracy = {("gated", 16): 0.5, ("gated", 32): 0.3, ("softmax", 16): 0.9, ("softmax", 32): 0.7}
    for (model, seq_len), test in accuracy.items():
        for seed in range(2):
            fake_run(tmp_path, model, 1e-3, seed, val=0.5, test=test, task={"name": "mqar", "seq_len": seq_len})
    maps = []
    drawn = figures.heatmap_figure
    monkeypatch.setattr(figures, "heatmap_figure", lambda summary, *args: maps.append((summary, args)) or
                        drawn(summary, *args))
    files = make_report([tmp_path], tmp_path / "r", x="condition", series=["model.name"]).files
    assert tmp_path / "r" / "heatmap_condition_model.name.png" in files
    summary, (rows, cols, _) = maps[-1]
    assert (rows, cols) == ("condition", "model.name")
    cells = summary.set_index(["model.name", "condition"])["test_accuracy_mean"].to_dict()
    assert cells == pytest.approx({("gated", "baseline"): 0.5, ("gated", "seq_len=32"): 0.3,
                                   ("softmax", "baseline"): 0.9, ("softmax", "seq_len=32"): 0.7})


def test_a_knob_added_later_takes_the_value_older_records_ran_with(tmp_path):
    """An older record has no model.mixer.beta_max; a newer one of the same cell has 1.0: they pool into one cell."""
    from cdyn_bench import NUMERICS_VERSION
    from cdyn_bench.record import RunResult, config_hash, write_result

    for seed, mixer in ((0, {"A": "householder"}), (1, {"A": "householder", "beta_max": 1.0})):
        config = {"model": {"name": "deltanet", "mixer": mixer}, "task": {"name": "mqar"}, "seed": seed}
        write_result(RunResult(config=config, config_hash=config_hash(config), status="completed", seed=seed, steps=20,
                               metrics={"test_accuracy": 0.5, "val_accuracy": 0.5}, numerics_version=NUMERICS_VERSION,
                               run_dir=f"cells/r{seed}"), tmp_path / "cells" / f"r{seed}")
    df, _ = load([tmp_path])
    assert df["model.mixer.beta_max"].tolist() == [1.0, 1.0] and swept_keys(df) == []
