"""Console entry points: `cdyn-run` (the Hydra app around run(cfg)), `cdyn-report` (records to tables) and
`cdyn-explain` (what the framework predicts for a config, before training)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cdyn_bench import hydra_adapter
from cdyn_bench.sweep import CELLS
from cdyn_bench.usage import cut_long_words, job_run_config, report_usage_errors

if TYPE_CHECKING:
    from cdyn_bench.config import RunConfig

def record_root(cfg: RunConfig) -> Path:
    """Single runs go to <out_dir>/runs; jobs of a multirun to <sweep dir>/cells."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return Path(hydra_cfg.sweep.dir) / CELLS
    return Path(cfg.out_dir) / "runs"


@hydra.main(version_base="1.3", config_path="pkg://cdyn_bench.conf", config_name="config")
def _run_app(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    # SystemExit passes through Hydra's job runner, so bad values exit 2 from inside the job too,
    # before torch is imported.
    run_cfg = report_usage_errors(lambda: job_run_config(cfg, hydra_cfg.launcher, hydra_cfg.overrides.task))
    from cdyn_bench.display import print_summary
    from cdyn_bench.run import run

    if hydra_cfg.mode == RunMode.MULTIRUN:
        # The sweep's progress (cdyn_bench.callbacks) replaces the per-run line and summary.
        report_usage_errors(lambda: run(dataclasses.replace(run_cfg, progress=False), record_root(run_cfg)))
    else:
        for line in run_cfg.train.notes():
            print(f"cdyn-run: note: {line}", file=sys.stderr)
        result = report_usage_errors(lambda: run(run_cfg, record_root(run_cfg)))
        if result.status != "interrupted":  # an interrupted run said where its checkpoint is
            print_summary(result)


def run_main() -> None:
    """`cdyn-run`: compose the config from conf/ and the command line, then train one run per job."""
    from cdyn_bench.compose import register_schema
    from cdyn_bench.help import check_groups, help_text

    args = sys.argv[1:]
    if "--help" in args or "-h" in args:
        with contextlib.suppress(BrokenPipeError):
            print(help_text())
        return
    report_usage_errors(lambda: check_groups([a for a in args if not a.startswith("-")]))
    register_schema()
    register_sweeper()
    hydra_adapter.replace_error_reporter(report_usage_errors)
    _run_app()


def register_sweeper() -> None:
    """Make Hydra know the resuming sweeper (conf/hydra/sweeper/resuming.yaml). Hydra finds plugins by walking
    the hydra_plugins package, which an editable install's import hook hides; registering the class
    directly works for every install (tests/test_sweep.py fails if Hydra's plugin registry changes)."""
    from hydra.core.plugins import Plugins

    # The registry first: its scan re-executes Hydra's own plugin modules, BasicSweeper's among them, and
    # the resuming sweeper must subclass the class that scan leaves.
    Plugins.instance()
    from hydra_plugins.cdyn_bench_sweeper import ResumingSweeper

    hydra_adapter.register_plugin(ResumingSweeper)


class OneLineParser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (the usage itself is in --help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def folder(text: str) -> Path:
    """An argument that names a folder: not empty (Path('') would be the working directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("'' names no folder")
    return Path(text)


def report_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cdyn-report", description="Aggregate run records (result.json files) into a table and figures.")
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                        help="sweep or run directories, searched for result.json")
    parser.add_argument("--out", type=folder, help="where tables and figures go (default: <first DIR>/report); report figures an earlier report drew there and this one does not are removed")
    parser.add_argument("--x", help="config key for the x axis of the accuracy figure (default: a swept key), or "
                                    "state_size / n_params (the recall vs state-size frontier), or condition (one point per "
                                    "factor changed from the baseline, for boundary sweeps; with --series)")
    parser.add_argument("--heat", nargs=2, metavar=("ROWS", "COLS"), help="two config keys for the heat map")
    parser.add_argument("--series", nargs="+", metavar="KEY",
                        help="config keys whose values make the lines of the accuracy figure (default: every other "
                             "swept key)")
    parser.add_argument("--wandb", nargs="?", const="offline", choices=("offline", "online"),
                        help="also log table and figures to W&B (offline unless 'online'; WANDB_MODE wins)")
    parser.add_argument("--pool", action="append", default=[], type=Path, metavar="DIR",
                        help="records of the same cells from other folders (a longer cap, a search's new lrs): "
                             "they join the table only for cells the DIRs have (repeatable)")
    parser.add_argument("--compare", metavar="KEY",
                        help="per cell of the other keys, every pair of values of KEY: each arm's seeds, the difference, "
                             "Welch's t and a bootstrap 95%% interval over seeds (compare.{csv,md})")
    parser.add_argument("--where", action="append", default=[], metavar="KEY=V1,V2",
                        help="keep only the records whose config KEY has one of the values (repeatable), "
                             "e.g. --where model.mixer.phi=exp,identity")
    from cdyn_bench.views import VIEWS

    views = parser.add_mutually_exclusive_group()
    for name, view in VIEWS.items():
        views.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=view.help)
    parser.add_argument("--mad-score", action="store_true",
                        help="also write MAD's score per model and task (mean over settings of the best-on-validation "
                             "optimiser setting), e.g. for +experiment=mad_protocol")
    return parser


# Paths in a message are cut only from this length on (a name the system refuses), so that a usual path keeps its file.
PATH_WORD = 300


def report_error(err: Exception) -> str:
    """One line for a report that could not be made: a bad input, or a file the system would not write."""
    if isinstance(err, OSError):
        return cut_long_words(f"{err.filename or 'the report'}: cannot write ({err.strerror or err}); the run records "
                              "are untouched; make room or choose another --out", limit=PATH_WORD)
    return cut_long_words(str(err), limit=PATH_WORD)


def path_kind(path: Path) -> str:
    """'folder', 'missing', 'a file, not a folder', or why the system cannot look at the path (a name too long)."""
    try:
        return "folder" if path.is_dir() else "a file, not a folder" if path.exists() else "missing"
    except OSError as err:
        return f"not a usable path ({err.strerror})"


def report_main(argv: list[str] | None = None) -> None:
    """`cdyn-report DIR... [--out DIR] [--where KEY=V,..] [--wandb]`: one warning line per bad record, the table,
    the files."""
    from cdyn_bench.report import make_report
    from cdyn_bench.table import markdown
    from cdyn_bench.views import VIEWS

    args = report_parser().parse_args(argv)
    for d in args.dirs:
        if (kind := path_kind(d)) not in ("folder", "a file, not a folder"):
            report_parser().error(cut_long_words(f"{d}: {'no such file or directory' if kind == 'missing' else kind}",
                                                 limit=PATH_WORD))
    if args.out is not None and (kind := path_kind(args.out)) not in ("folder", "missing"):
        report_parser().error(cut_long_words(f"--out {args.out}: {kind}; name a folder for the tables and figures",
                                             limit=PATH_WORD))
    view = next((name for name in VIEWS if getattr(args, name)), None)
    if view is not None:
        try:
            table, files = VIEWS[view].write(args.dirs, args.out or args.dirs[0] / "report")
        except (ValueError, OSError) as err:
            print(f"cdyn-report: error: {report_error(err)}", file=sys.stderr)
            sys.exit(1)
        if table is not None:
            print(table.to_markdown(index=False))
        print("wrote: " + " ".join(map(str, files)))
        return
    try:
        report = make_report(args.dirs, args.out or args.dirs[0] / "report", args.x, args.heat, args.wandb,
                             mad=args.mad_score, where=args.where, series=args.series,
                             pool=[d for d in args.pool if d.exists()], compare=args.compare)
    except (ValueError, OSError) as err:
        print(f"cdyn-report: error: {report_error(err)}", file=sys.stderr)
        sys.exit(1)
    for line in report.problems:
        print(f"warning: {line}", file=sys.stderr)
    for line in report.search:
        print(f"search: {line}", file=sys.stderr)
    print(markdown(report.table, report.keys))
    if report.mad is not None:
        print("\nMAD score\n" + report.mad.round(4).to_markdown(index=False))
    print("wrote: " + " ".join(map(str, report.files)))


def explain_main(argv: list[str] | None = None) -> None:
    """`cdyn-explain OVERRIDES...`: the principle card of the config `cdyn-run OVERRIDES...` would train."""
    from cdyn_bench.compose import compose
    from cdyn_bench.principles import card_text

    args = sys.argv[1:] if argv is None else argv
    if "--help" in args or "-h" in args:
        print("usage: cdyn-explain [KEY=VALUE ...]   (the overrides of cdyn-run; prints the principle card)")
        return
    from cdyn_bench.help import check_groups

    report_usage_errors(lambda: check_groups([a for a in args if not a.startswith("-")]), "cdyn-explain")
    cfg = report_usage_errors(lambda: compose(*args), "cdyn-explain")
    print(card_text(cfg))
