"""Reproduce the paper's findings and principles: run each experiment's sweeps (resumable), then its reports.

Each finding is one or more sweeps (conf/experiment/<sweep>.yaml) whose records go to
results/findings/<sweep>/records (the paper's three findings), results/principles/<sweep>/records
(the other principles and the MQAR frontier) or results/spectra/<sweep>/records (eigenvalue spectra;
their saved weights stay out of git, so the spectra report needs a rerun on a fresh clone), and
reports made from them by cdyn-report. Principle 1 (finite_state) is a measurement instead:
scripts/finite_state.py writes results/finite_state/finite_state.{csv,json}, cdyn-report --finite-state the
table and figure. A rerun skips every
cell with a finished record of the current numerics version, so an interrupted reproduction
continues where it stopped (on this machine or another, from the committed records).

    python scripts/reproduce.py                       # every finding, then the reports
    python scripts/reproduce.py normalization         # one finding
    python scripts/reproduce.py --report-only         # tables and figures from the committed records
    python scripts/reproduce.py --quick               # one seed, a few cells each, under outputs/quick
    python scripts/reproduce.py --extended            # also the sweeps past the CPU budget (more boundaries)

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
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


@dataclass
class Report:
    """One cdyn-report call: the sweeps whose records it reads, where it writes, its options."""

    sweeps: list[str]
    out: str
    options: list[str] = field(default_factory=list)


@dataclass
class Finding:
    sweeps: list[str]
    reports: list[Report]
    quick: dict[str, list[str]]  # per sweep, the overrides that cut it to a few cells for --quick
    extended: list[str] = field(default_factory=list)  # sweeps past the CPU budget: run with --extended only
    folder: str = "findings"  # under results/: the paper's findings, or the other principles
    # Per sweep, the sweeps (same folder) whose finished records of identical configs it copies, not reruns.
    reuse: dict[str, list[str]] = field(default_factory=dict)
    # A measurement instead of sweeps: a script of scripts/ that writes into the folder, and its --quick options.
    measure: list[str] = field(default_factory=list)
    measure_quick: list[str] = field(default_factory=list)


def unstable_boundaries(phi: str, sweep: str, suffix: str) -> list[Report]:
    """Finding 3's boundaries for one readout phi at gamma = 1.05: per condition, and against seq_len."""
    where = ["--where", "model.mixer.gamma=1.05", "--where", f"model.mixer.phi={phi}"]
    baseline = ["--where", "train.grad_clip=1.0", "--where", "model.pre_norm=True", "--where", "model.n_layers=2"]
    return [Report(["unstable_evolution", sweep], f"unstable_evolution/boundaries{suffix}",
                   [*where, "--x", "condition", "--series", "model.mixer.eta"]),
            Report(["unstable_evolution", sweep], f"unstable_evolution/seq_len{suffix}",
                   [*where, *baseline, "--x", "task.seq_len"])]


FINDINGS = {
    "normalization": Finding(
        sweeps=["normalization", "normalization_boundaries", "normalization_long"],
        reports=[
            Report(["normalization_long"], "normalization/long", ["--x", "model.mixer.eta", "--heat", "model.mixer.phi",
                                                                  "model.mixer.eta"]),
            Report(["normalization"], "normalization", ["--x", "model.mixer.eta", "--heat", "model.mixer.phi",
                                                        "model.mixer.eta", "--compare", "model.mixer.eta"]),
            *(Report(["normalization"], f"normalization/{a}", ["--where", f"model.mixer.A={a}", "--x", "model.mixer.eta",
                                                               "--heat", "model.mixer.phi", "model.mixer.eta"])
              for a in ("identity", "scalar_gate")),
            Report(["normalization", "normalization_boundaries"], "normalization/boundaries",
                   ["--where", "model.mixer.A=identity", "--where", "model.mixer.phi=exp", "--x", "condition",
                    "--series", "model.mixer.eta"]),
        ],
        quick={"normalization": ["model.mixer.phi=exp", "model.mixer.eta=one,sum"],
               "normalization_boundaries": ["+condition=no_clip"],
               "normalization_long": ["model.mixer.phi=exp", "model.mixer.eta=one", "+evolution=scalar_gate"]},
    ),
    "unstable_evolution": Finding(
        sweeps=["unstable_evolution", "unstable_evolution_boundaries", "unstable_evolution_length"],
        reports=[
            Report(["unstable_evolution_length"], "unstable_evolution/length",
                   ["--x", "task.seq_len", "--series", "model.mixer.gamma", "model.mixer.eta", "--compare",
                    "model.mixer.gamma"]),
            Report(["unstable_evolution"], "unstable_evolution", ["--x", "model.mixer.gamma", "--heat",
                                                                  "model.mixer.gamma", "model.mixer.eta"]),
            *(Report(["unstable_evolution"], f"unstable_evolution/{phi}",
                     ["--where", f"model.mixer.phi={phi}", "--x", "model.mixer.gamma", "--heat", "model.mixer.gamma",
                      "model.mixer.eta"]) for phi in ("exp", "identity")),
            # Per readout: phi = exp in the budget, phi = identity in the extended sweep.
            *unstable_boundaries("exp", "unstable_evolution_boundaries", ""),
            *unstable_boundaries("identity", "unstable_evolution_boundaries_identity", "_identity"),
        ],
        quick={"unstable_evolution": ["model.mixer.gamma=1.05", "model.mixer.eta=one,sum"],
               "unstable_evolution_boundaries": ["+condition=seq_len_128"],
               "unstable_evolution_boundaries_identity": ["+condition=seq_len_128"],
               "unstable_evolution_length": ["+condition=seq_len_128", "model.mixer.gamma=1.05", "model.mixer.eta=sum"]},
        extended=["unstable_evolution_boundaries_identity"],
    ),
    "key_scaling": Finding(
        sweeps=["key_scaling", "key_scaling_noisy_icr"],
        reports=[
            Report(["key_scaling"], "key_scaling", ["--x", "model.mixer.head_dim", "--compare", "model.mixer.scale_b"]),
            Report(["key_scaling_noisy_icr"], "key_scaling/noisy_icr", ["--x", "model.mixer.head_dim"]),
            Report(["key_scaling_long"], "key_scaling/long", ["--x", "model.mixer.head_dim"]),
        ],
        quick={"key_scaling": ["model=softmax", "model.mixer.head_dim=16,64"],
               "key_scaling_noisy_icr": ["model=softmax", "model.mixer.head_dim=16,64"],
               "key_scaling_long": ["model=gated", "model.mixer.head_dim=16"]},
        extended=["key_scaling_long"],
    ),
    "finite_state": Finding(
        sweeps=[], reports=[Report([], ".", ["--finite-state"])], quick={}, folder="finite_state",
        measure=["finite_state.py"], measure_quick=["--presets", "softmax", "gated", "--lengths", "64", "256"],
    ),
    "readout_selectivity": Finding(
        sweeps=["readout_selectivity", "readout_selectivity_eta_one"],
        reports=[Report(["readout_selectivity"], "readout_selectivity", ["--x", "task.frac_noise"]),
                 Report(["readout_selectivity", "readout_selectivity_eta_one"], "readout_selectivity/eta",
                        ["--where", "model.mixer.phi=identity", "--x", "task.frac_noise", "--series", "model.mixer.eta",
                         "--compare", "model.mixer.eta"])],
        quick={"readout_selectivity": ["model.mixer.phi=identity,exp", "task.frac_noise=0.6"],
               "readout_selectivity_eta_one": ["task.frac_noise=0.6"]},
        folder="principles",
    ),
    "position": Finding(
        sweeps=["position", "position_conv"],
        reports=[
            *(Report(["position"], f"position/{task}", ["--where", f"task.name={task}", "--heat", "model.mixer.A",
                                                          "model.pos_emb", "--x", "model.mixer.A"])
              for task in ("selective_copy", "icr")),
            # The boundary on its own: a heat map over both sweeps would pick the convolution on validation.
            *(Report(["position", "position_conv"], f"position/{task}/conv",
                     ["--where", f"task.name={task}", "--where", "model.pos_emb=none", "--where",
                      "model.mixer.A=identity,scalar_gate", "--heat", "model.mixer.A", "model.mixer.conv_size",
                      "--x", "model.mixer.A"]) for task in ("selective_copy", "icr")),
        ],
        quick={"position": ["model.mixer.A=identity,scalar_gate", "model.pos_emb=none"],
               "position_conv": ["model.mixer.A=identity"]},
        folder="principles",
    ),
    "evolution_structure": Finding(
        sweeps=["evolution_structure"],
        reports=[Report(["evolution_structure"], "evolution_structure", ["--x", "task.num_kv_pairs"])],
        quick={"evolution_structure": ["model.mixer.A=scalar_gate,householder", "task.num_kv_pairs=8"]},
        folder="principles",
    ),
    "mqar_frontier": Finding(
        sweeps=["mqar_frontier", "mqar_frontier_conv"],
        reports=[Report(["mqar_frontier"], "mqar_frontier", ["--x", "state_size", "--series", "model.name",
                                                             "task.num_kv_pairs"]),
                 Report(["mqar_frontier"], "mqar_frontier/width", ["--x", "model.d_model"]),
                 Report(["mqar_frontier_conv"], "mqar_frontier/conv", ["--x", "model.mixer.conv_size", "--series",
                                                                       "model.name", "task.num_kv_pairs", "--compare",
                                                                       "model.mixer.conv_size"])],
        quick={"mqar_frontier": ["model=softmax,gated", "model.d_model=32", "+mqar_setting=short"],
               "mqar_frontier_conv": ["model=gated", "model.mixer.conv_size=0", "+mqar_setting=short"]},
        folder="principles",
        reuse={"mqar_frontier_conv": ["mqar_frontier"]},
    ),
    "depth": Finding(
        sweeps=["depth"],
        reports=[Report(["depth"], f"depth/{cell}", ["--where", f"task.name={task}", "--x", "model.n_layers"])
                 for cell, task in (("selectivity", "noisy_icr"), ("position", "selective_copy"), ("structure", "mqar"))],
        quick={"depth": ["+depth_cell=selectivity,position,structure", "model.n_layers=1,2"]},
        folder="principles",
        reuse={"depth": ["readout_selectivity", "position", "evolution_structure"]},
    ),
    "coefficient_maps": Finding(
        sweeps=[], reports=[Report([], ".", ["--maps"])], quick={}, folder="maps",
        measure=["coefficient_maps.py", "--no-report"], measure_quick=["--quick"],
    ),
    "spectra": Finding(
        sweeps=["spectra", "spectra_no_conv"],
        reports=[Report(["spectra", "spectra_no_conv"], "spectra", ["--spectra"]),
                 Report(["spectra", "spectra_no_conv"], "accuracy", [])],
        quick={"spectra": ["model=softmax,gated", "task=mqar"], "spectra_no_conv": ["task=mqar"]},
        folder="spectra",
    ),
}
QUICK = ["seed=0", "train.lr=3e-3", "train.max_steps=60", "train.eval_every=30", "task.num_val=256", "task.num_test=256"]


def sh(command: list[str]) -> None:
    """Run a console script of this environment (beside the running Python, else on PATH) from the repo root."""
    print("$ " + shlex.join(command), flush=True)
    script = Path(sys.executable).parent / command[0]
    subprocess.run([str(script) if script.exists() else command[0], *command[1:]], cwd=ROOT, check=True)


def records(root: Path, sweep: str) -> Path:
    return root / sweep / "records"


def run_sweep(sweep: str, root: Path, overrides: list[str], reuse: list[str]) -> None:
    # Relative to the repository root, where cdyn-run runs: records name folders that exist on any clone.
    donors = [os.path.relpath(records(root, s), ROOT) for s in reuse if records(root, s).is_dir()]
    sh(["cdyn-run", f"+experiment={sweep}", "hydra/launcher=parallel", f"hydra.sweep.dir={records(root, sweep)}",
        "progress=false", "wandb=disabled", *([f"reuse=[{','.join(donors)}]"] if donors else []), *overrides])


def search_folder(name: str) -> str:
    """The sweep folder of a finding's search extension (cdyn_bench.search): <finding>_search."""
    return f"{name}_search"


def finding_sweeps(name: str) -> list[str]:
    """Every sweep of a finding, the extended ones included, and its search extension."""
    return [*FINDINGS[name].sweeps, *FINDINGS[name].extended, search_folder(name)]


def run_search(name: str, root: Path, jobs: int) -> None:
    """Extend a finding's flagged cells by its experiments' search rule (one rule for all its sweeps)."""
    from cdyn_bench.config import compose
    from cdyn_bench.search import extend

    finding = FINDINGS[name]
    rules = {sweep: compose(f"+experiment={sweep}").search for sweep in finding.sweeps + finding.extended}
    rule = rules[finding.sweeps[0]]
    if any(other != rule for other in rules.values()):
        raise SystemExit(f"reproduce: error: the sweeps of {name} carry different search rules; one finding, one rule")
    if rule.max_rounds == 0:
        return
    dirs = [records(root, s) for s in finding.sweeps + finding.extended if records(root, s).is_dir()]
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
    pooled = [option for s in pool if s not in report.sweeps and records(root, s).is_dir()
              for option in ("--pool", str(records(root, s)))]
    sh(["cdyn-report", *map(str, dirs), *pooled, "--out", str(root / report.out), *report.options])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("findings", nargs="*", metavar="FINDING", help=f"any of {', '.join(FINDINGS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="one seed, a few cells, under outputs/quick")
    parser.add_argument("--report-only", action="store_true", help="only the reports, from the existing records")
    parser.add_argument("--extended", action="store_true", help="also the sweeps past the CPU budget")
    parser.add_argument("--search", action="store_true",
                        help="extend the cells whose verdict rests on the search by the experiments' search rule "
                             "(cdyn_bench.search), into results/<folder>/<finding>_search")
    parser.add_argument("--jobs", type=int, default=2, help="parallel training processes of --search (default: 2)")
    parser.add_argument("--root", type=Path, help="where the findings/ and principles/ folders go (default: "
                                                  "results; outputs/quick with --quick)")
    args = parser.parse_args()
    unknown = [f for f in args.findings if f not in FINDINGS]
    if unknown:
        parser.error(f"finding {unknown[0]!r}: allowed: {', '.join(FINDINGS)}")
    base = (args.root or (ROOT / "outputs" / "quick" if args.quick else RESULTS)).resolve()
    start = time.perf_counter()
    for name in args.findings or list(FINDINGS):
        finding = FINDINGS[name]
        root = base / finding.folder
        if not args.report_only:
            if finding.measure:
                script, *options = finding.measure
                subprocess.run([sys.executable, str(ROOT / "scripts" / script), *options, "--out", str(root),
                                *(finding.measure_quick if args.quick else [])], cwd=ROOT, check=True)
            for sweep in finding.sweeps + (finding.extended if args.extended else []):
                run_sweep(sweep, root, QUICK + finding.quick[sweep] if args.quick else [], finding.reuse.get(sweep, []))
            if args.search and not args.quick and finding.sweeps:
                run_search(name, root, args.jobs)
        for report in finding.reports:
            make_report(report, root, finding_sweeps(name))
    print(f"reproduce: done in {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
