"""`cdyn-reproduce`: reproduce the paper's findings and principles: run each experiment's sweeps (resumable), then its reports.

Each finding (cdyn_bench.experiments) is one or more sweeps (conf/experiment/<sweep>.yaml) whose records go to
results/findings/<sweep>/records (the paper's three findings), results/principles/<sweep>/records
(the other principles and the MQAR frontier) or results/spectra/<sweep>/records (eigenvalue spectra;
their saved weights stay out of git, so the spectra report needs a rerun on a fresh clone), and
reports made from them by cdyn-report. Principle 1 (finite_state) is a measurement instead:
cdyn_bench.measures.inference_cost writes results/finite_state/finite_state.{csv,json}, cdyn-report
--finite-state the table and figure; the deterministic measurements (score variance, noise share) and the
summaries under results/bench (budget, search status, plateau stop) are remade with the reports. A rerun skips every
cell with a finished record of the current numerics version, so an interrupted reproduction
continues where it stopped (on this machine or another, from the committed records).

    cdyn-reproduce                       # every finding, then the reports
    cdyn-reproduce normalization         # one finding
    cdyn-reproduce --report-only         # tables and figures from the committed records
    cdyn-reproduce --quick               # one seed, a few cells each, under outputs/quick
    cdyn-reproduce --extended            # also the sweeps past the CPU budget (more boundaries)

A finding's `sweeps` are the grid sized to the CPU budget (the three findings about 5 hours on a 2-core
machine); its `extended` sweeps map further boundaries (phi = identity's, a longer training budget) and
run only with --extended, while their reports are written whenever their records exist, so the
committed ones regenerate with the rest.

--quick is a smoke test of the whole pipeline (one seed, one learning rate, a few cells of each
experiment, 60 steps), written under outputs/quick, never under results/.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from cdyn_bench.experiments import FINDINGS, QUICK, Report, finding_sweeps, records, search_folder
from cdyn_bench.measures import MEASURES, SUMMARIES


def sh(command: list[str]) -> None:
    """Run a console script of this environment (beside the running Python, else on PATH) from the repo root."""
    print("$ " + shlex.join(command), flush=True)
    script = Path(sys.executable).parent / command[0]
    done = subprocess.run([str(script) if script.exists() else command[0], *command[1:]])
    if done.returncode != 0:  # the command printed its own error line above; the records it finished stay
        raise SystemExit(f"reproduce: error: {command[0]} exited with status {done.returncode}; finished records are "
                         "kept, the same command resumes")


def run_sweep(sweep: str, root: Path, overrides: list[str], reuse: list[str]) -> None:
    # Relative to the working directory (the repository root), where cdyn-run runs: records name folders that
    # exist on any clone.
    donors = [os.path.relpath(records(root, s)) for s in reuse if records(root, s).is_dir()]
    sh(["cdyn-run", f"+experiment={sweep}", "hydra/launcher=parallel", f"hydra.sweep.dir={records(root, sweep)}",
        "progress=false", "wandb=disabled", *([f"reuse=[{','.join(donors)}]"] if donors else []), *overrides])


def run_search(name: str, root: Path, jobs: int, plan_only: bool = False) -> None:
    """Extend a finding's flagged cells by its experiments' search rule (one rule for all its sweeps); with
    `plan_only`, print what its next round would train instead."""
    from cdyn_bench.compose import compose
    from cdyn_bench.search_runs import extend, plan

    finding = FINDINGS[name]
    rules = {sweep: compose(f"+experiment={sweep}").search for sweep in finding.sweeps + finding.extended}
    rule = rules[finding.sweeps[0]]
    if any(other != rule for other in rules.values()):
        raise SystemExit(f"reproduce: error: the sweeps of {name} carry different search rules; one finding, one rule")
    if rule.max_rounds == 0:
        return
    dirs = [records(root, s) for s in finding.sweeps + finding.extended if records(root, s).is_dir()]
    if plan_only:
        for line in plan(dirs, records(root, search_folder(name)), rule, jobs):
            print(f"search {name}: {line}", flush=True)
        return
    start = time.perf_counter()
    trained = extend(dirs, records(root, search_folder(name)), rule, jobs=jobs, log=lambda line: print(line, flush=True))
    print(f"search {name}: {trained} runs in {time.perf_counter() - start:.0f} s", flush=True)


def make_report(report: Report, root: Path, pool: list[str] = ()) -> None:
    if not report.sweeps:  # a measurement's report reads the folder it measured into
        if not any(root.glob("*.csv")) and not any(root.rglob("result.json")):
            print(f"skipped {root / report.out}: nothing measured in {root} yet")
            return
        sh(["cdyn-report", str(root), "--out", str(root / report.out), *report.options])
        return
    dirs = [records(root, s) for s in report.sweeps if records(root, s).exists()]
    if len(dirs) < len(report.sweeps):
        missing = [s for s in report.sweeps if not records(root, s).exists()]
        print(f"skipped {root / report.out}: no records of {', '.join(missing)} yet")
        return
    if "--spectra" in report.options and not any(any(d.rglob("weights_final.pt")) for d in dirs):
        # The weights stay out of git: on a fresh clone the committed spectra tables stand until a rerun.
        print(f"skipped {root / report.out}: the spectra need the runs' weights; run the sweeps to write them")
        return
    if (why := unmatched(dirs, report.options)) is not None:  # a sweep part-way: this view's cells come later
        print(f"skipped {root / report.out}: {why} yet")
        return
    pooled = [option for s in pool if s not in report.sweeps and records(root, s).is_dir()
              for option in ("--pool", str(records(root, s)))]
    sh(["cdyn-report", *map(str, dirs), *pooled, "--out", str(root / report.out), *report.options])


def unmatched(dirs: list[Path], options: list[str]) -> str | None:
    """Why a report's --where conditions select no record of `dirs` (None when they select some)."""
    where = [options[i + 1] for i, option in enumerate(options) if option == "--where"]
    if not where:
        return None
    from cdyn_bench.table import load, select_where

    df, _ = load(dirs)
    try:
        select_where(df, where)
    except (ValueError, KeyError) as err:
        return str(err).splitlines()[0]
    return None


def measure(name: str, root: Path, quick: bool, report_only: bool) -> None:
    """A finding's measurements: all of them when it runs, the deterministic ones (with_reports) with the reports."""
    for key in FINDINGS[name].measures:
        if MEASURES[key].with_reports or not report_only:
            print(f"measure {key}: {MEASURES[key].write(root, quick)}", flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cdyn-reproduce", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("findings", nargs="*", metavar="FINDING", help=f"any of {', '.join(FINDINGS)} (default: all, then "
                                                                   "the summaries under results/bench)")
    p.add_argument("--quick", action="store_true", help="one seed, a few cells, under outputs/quick")
    p.add_argument("--report-only", action="store_true", help="only the reports, from the existing records")
    p.add_argument("--extended", action="store_true", help="also the sweeps past the CPU budget")
    p.add_argument("--search", action="store_true",
                   help="extend the cells whose verdict rests on the search by the experiments' search rule "
                        "(cdyn_bench.search), into results/<folder>/<finding>_search")
    p.add_argument("--plan", action="store_true",
                   help="with --search: print each finding's next search round (runs per lr and step cap, an "
                        "estimate of its time) and train nothing")
    p.add_argument("--jobs", type=int, default=2, help="parallel training processes of --search (default: 2)")
    p.add_argument("--root", type=Path, help="where the findings/ and principles/ folders go (default: results; "
                                             "outputs/quick with --quick)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    unknown = [f for f in args.findings if f not in FINDINGS]
    if unknown:
        parser().error(f"finding {unknown[0]!r}: allowed: {', '.join(FINDINGS)}")
    if args.plan and not args.search:
        parser().error("--plan: only with --search (it prints the search's next round)")
    base = (args.root or Path("outputs/quick" if args.quick else "results")).resolve()
    start = time.perf_counter()
    if args.plan:
        for name in args.findings or list(FINDINGS):
            if FINDINGS[name].sweeps:
                run_search(name, base / FINDINGS[name].folder, args.jobs, plan_only=True)
        return
    for name in args.findings or list(FINDINGS):
        finding = FINDINGS[name]
        root = base / finding.folder
        if not args.report_only:
            for sweep in finding.sweeps + (finding.extended if args.extended else []):
                run_sweep(sweep, root, QUICK + finding.quick[sweep] if args.quick else [], finding.reuse.get(sweep, []))
            if args.search and not args.quick and finding.sweeps:
                run_search(name, root, args.jobs)
        measure(name, root, args.quick, args.report_only)
        for report in finding.reports:
            make_report(report, root, finding_sweeps(name))
    if not args.findings and not args.quick:
        for name, write in SUMMARIES.items():
            print(f"summary {name}: {write(base)}", flush=True)
    print(f"reproduce: done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
