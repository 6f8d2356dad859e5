"""`cdyn-report`'s default view: the table (cdyn_bench.table) and its figures (cdyn_bench.report_figures) under one
folder, with the MAD score, the comparison of two arms and the W&B mirror when asked. The other views:
cdyn_bench.views."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cdyn_bench.report_figures import write_figures
from cdyn_bench.table import (
    RUN_AXES, at_longest_caps, build, check_keys, flag_warning, load, mad_score, mixed_versions, pooled, select_where,
    unfinished, write_comparison, write_mad_score, write_tables,
)


def log_to_wandb(tab: pd.DataFrame, files: list[Path], group: str | None, mode: str, out: Path) -> None:
    """Log the table and figures to W&B (WANDB_MODE wins over `mode`); a failure is one warning line."""
    from cdyn_bench.tracking import open_run

    name = f"report-{group or 'runs'}"
    with open_run(mode, out, name=name, group=group, job_type="report", what="W&B logging",
                  tags=[f"sweep:{group}"] if group else None) as run:
        if run is not None:
            import wandb

            from cdyn_bench.tracking import log_files

            images = {p.stem: wandb.Image(str(p)) for p in files if p.suffix == ".png"}
            run.log({"table": wandb.Table(dataframe=tab), **images})
            log_files(run, f"report-{group or 'runs'}", "report", files)


@dataclass
class Report:
    """What cdyn-report made: the table, its keys, the files written and one line per problem found."""

    table: pd.DataFrame
    keys: list[str]
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    mad: pd.DataFrame | None = None
    search: list[str] = field(default_factory=list)  # the cells that rest on the search (flag_warning)


def make_report(dirs: list[Path], out: Path, x: str | None = None, heat: list[str] | None = None,
                wandb: str | None = None, mad: bool = False, where: list[str] = (),
                series: list[str] | None = None, pool: list[Path] = (), compare: str | None = None) -> Report:
    """Load the records under `dirs` (and those under `pool` of the same cells; see `pooled`), keep those
    matching every `where` condition, write the table and figures under `out`; ValueError if none load."""
    df, problems = load(dirs)
    if pool and not df.empty:
        extra, more = load(list(pool))
        df, problems = pooled(df, extra), problems + more
    problems += unfinished(dirs)
    if df.empty:
        raise ValueError(f"no finished run records under {', '.join(map(str, dirs))}")
    df = select_where(df, list(where))
    problems += mixed_versions(df)
    check_keys(df, [x] if x else [], RUN_AXES)
    check_keys(df, [*(heat or []), *(series or []), *([compare] if compare else [])])
    df = at_longest_caps(df)
    tab, cell, over = build(df)
    files = write_tables(tab, cell + over, out) + write_figures(df, cell, over, out, x, heat, series, list(where))
    if mad:
        files += write_mad_score(tab, out)
    if compare:
        files += write_comparison(df, cell, over, compare, out)
    if wandb:
        groups = df["sweep_name"].unique()
        log_to_wandb(tab, files, groups[0] if len(groups) == 1 else None, wandb, out)
    return Report(tab, cell + over, files, problems, mad_score(tab) if mad else None, flag_warning(tab, cell + over))
