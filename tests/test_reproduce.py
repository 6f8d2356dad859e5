"""cdyn-reproduce: every finding's sweeps and quick cuts compose; --quick runs the pipeline end to end (slow)."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from helpers import BIN, cli_env, compose, conf_file, group_names, sweep_jobs

from cdyn_bench import reproduce
from cdyn_bench.measures import MEASURES
from cdyn_bench.table import select_where

ROOT = Path(__file__).resolve().parents[1]


def single(override: str) -> str:
    """A sweep override cut to its first value (compose takes one value per key)."""
    key, _, values = override.partition("=")
    return f"{key}={values.split(',')[0]}"


@pytest.mark.parametrize("name", list(reproduce.FINDINGS))
def test_every_sweep_is_an_experiment_and_its_quick_cut_composes(name):
    finding = reproduce.FINDINGS[name]
    sweeps = finding.sweeps + finding.extended
    assert set(finding.quick) == set(sweeps) <= set(group_names("experiment"))
    assert not set(finding.sweeps) & set(finding.extended)
    # A finding with no sweeps of its own (the principle card) reads those of the findings in its folder.
    folder = {s for f in reproduce.FINDINGS.values() if f.folder == finding.folder for s in f.sweeps + f.extended}
    assert {s for r in finding.reports for s in r.sweeps} <= set(sweeps if finding.sweeps else folder)
    for sweep in sweeps:
        cfg = compose(f"+experiment={sweep}", *map(single, reproduce.QUICK + finding.quick[sweep]))
        assert cfg.seed == 0 and cfg.train.max_steps == 60 and cfg.sweep_name == sweep


def where(report) -> list[str]:
    return [value for option, value in zip(report.options, report.options[1:]) if option == "--where"]


@pytest.mark.parametrize("name", list(reproduce.FINDINGS))
def test_the_quick_cut_has_records_for_every_report(name):
    # cdyn-report refuses a --where that keeps no record, so --quick (and its slow test) would stop there.
    finding = reproduce.FINDINGS[name]
    for report in finding.reports:
        if not where(report) or set(report.sweeps) & set(finding.extended):
            continue  # a budget run writes the extended sweeps' reports only where committed records exist
        cells = [compose(*job) for sweep in report.sweeps
                 for job in sweep_jobs(f"+experiment={sweep}", *reproduce.QUICK, *finding.quick[sweep])]
        configs = pd.json_normalize([dataclasses.asdict(cfg) for cfg in cells], sep=".")
        select_where(configs, where(report))  # raises ValueError naming the condition no cell meets


CELL_GROUPS = [("condition", "normalization_boundaries"), ("order_task", "position"), ("depth_cell", "depth"),
               ("mqar_setting", "mqar_frontier")]


@pytest.mark.parametrize("group, experiment, option",
                         [(g, e, o) for g, e in CELL_GROUPS for o in group_names(g)])
def test_every_option_of_a_cell_group_composes_with_its_experiment(group, experiment, option):
    assert compose(f"+experiment={experiment}", f"+{group}={option}").sweep_name == experiment


@pytest.mark.parametrize("extended", [False, True])
def test_extended_sweeps_run_only_with_extended(monkeypatch, tmp_path, extended):
    ran, reported = [], []
    monkeypatch.setattr(reproduce, "run_sweep", lambda sweep, *args: ran.append(sweep))
    monkeypatch.setattr(reproduce, "make_report", lambda report, root, pool=(): reported.append(report.out))
    monkeypatch.setattr(reproduce, "measure", lambda *args: None)
    reproduce.main(["unstable_evolution", "key_scaling", "--root", str(tmp_path), *(["--extended"] if extended else [])])
    budget = ["unstable_evolution", "unstable_evolution_boundaries", "unstable_evolution_length", "key_scaling",
              "key_scaling_noisy_icr"]
    assert ran == (budget[:3] + ["unstable_evolution_boundaries_identity"] + budget[3:] + ["key_scaling_long"]
                   if extended else budget)
    # The extended sweeps' reports are written either way (from committed records, where they exist).
    assert {"unstable_evolution/boundaries_identity", "key_scaling/long"} <= set(reported)


@pytest.mark.parametrize("condition", ["seq_len_128", "seq_len_256", "no_clip", "no_pre_norm"])
def test_the_extended_unstable_boundaries_are_the_budget_cells_with_phi_identity(condition):
    # Same configs, so the records of either sweep are those of one grid split by phi (and resume as such).
    cell = (f"+condition={condition}", "model.mixer.phi=identity", "model.mixer.eta=sum", "train.lr=3e-3", "seed=2")
    extended = compose("+experiment=unstable_evolution_boundaries_identity", *cell)
    assert extended.identity() == compose("+experiment=unstable_evolution_boundaries", *cell).identity()
    assert extended.sweep_name == "unstable_evolution_boundaries_identity"


def test_an_unknown_finding_is_one_line_naming_it(tmp_path):
    out = subprocess.run([BIN / "cdyn-reproduce", "normalisation"], capture_output=True, text=True, env=cli_env(tmp_path))
    assert out.returncode == 2 and "finding 'normalisation'" in out.stderr and "normalization" in out.stderr


def test_every_finding_lists_known_measurements_and_help_lists_the_findings(tmp_path):
    assert all(set(f.measures) <= set(MEASURES) for f in reproduce.FINDINGS.values())
    out = subprocess.run([BIN / "cdyn-reproduce", "--help"], capture_output=True, text=True, env=cli_env(tmp_path))
    assert out.returncode == 0 and all(name in out.stdout for name in reproduce.FINDINGS)


@pytest.mark.slow
def test_quick_reproduction_runs_every_finding_and_writes_its_reports(tmp_path):
    subprocess.run([BIN / "cdyn-reproduce", "--quick", "--root", str(tmp_path)], check=True, cwd=tmp_path,
                   env=cli_env(tmp_path))
    for finding in reproduce.FINDINGS.values():
        for report in finding.reports:
            if set(report.sweeps) & set(finding.extended):
                continue  # extended sweeps run with --extended only: their reports wait for their records
            # a sweep's report, its eigenvalue spectra, or a measurement's
            views = {"--spectra": "spectra.csv", "--principles": "principles.csv", "--maps": "maps_*.png",
                     "--finite-state": "finite_state.md"}
            written = next((views[o] for o in report.options if o in views), "table.csv")
            assert any((tmp_path / finding.folder / report.out).glob(written)), report.out


# Each depth cell at 2 blocks and the cell of its principle experiment it stands for (same lr and seed).
DEPTH_DONORS = {"selectivity": ("readout_selectivity", "model.mixer.phi=exp", "task.frac_noise=0.6"),
                "position": ("position", "+order_task=selective_copy", "model.mixer.A=identity", "model.pos_emb=none"),
                "structure": ("evolution_structure", "model.mixer.A=gated_householder", "task.num_kv_pairs=16")}


@pytest.mark.parametrize("cell", list(DEPTH_DONORS))
def test_depth_at_two_blocks_is_the_config_of_the_experiment_it_reuses(cell):
    sweep, *overrides = DEPTH_DONORS[cell]
    assert sweep in reproduce.FINDINGS["depth"].reuse["depth"]
    # The donor cell is in the donor's grid (a grid that drops it leaves depth's 2-block cells to train).
    params = conf_file("experiment", sweep)["hydra"]["sweeper"]["params"]
    for key, _, value in (o.partition("=") for o in overrides):
        assert value in str(params[key]).split(","), (sweep, key, value)
    run = ("train.lr=3e-3", "seed=1")
    depth = compose("+experiment=depth", f"+depth_cell={cell}", "model.n_layers=2", *run)
    donor = compose(f"+experiment={sweep}", *overrides, *run)
    assert depth.identity() == donor.identity()
    assert compose("+experiment=depth", f"+depth_cell={cell}", "model.n_layers=4", *run).identity() != donor.identity()


@pytest.mark.parametrize("name", [n for n in group_names("experiment") if n.endswith("_full")])
def test_a_full_experiment_inherits_its_base_or_says_why_not(name):
    base, text = name.removesuffix("_full"), (ROOT / "conf" / "experiment" / f"{name}.yaml").read_text()
    assert f"defaults:\n  - {base}\n" in text or f"Not inherited from {base}.yaml" in text


def test_plan_prints_the_next_search_round_and_trains_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(reproduce, "run_sweep", lambda *args: pytest.fail("--plan trained"))
    reproduce.main(["state_tracking", "--search", "--plan", "--root", str(tmp_path)])
    assert capsys.readouterr().out == "search state_tracking: next round: none yet (no records: the grid runs first)\n"
    with pytest.raises(SystemExit) as err:
        reproduce.main(["--plan"])
    assert err.value.code == 2 and "--plan: only with --search" in capsys.readouterr().err
