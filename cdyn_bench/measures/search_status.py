"""How many cells of the committed findings and principles still rest on the search (cdyn_bench.search).

Pools every record under results/findings and results/principles (the search extensions included), judges
each cell up to seed, lr and step cap with the standard rule, and writes results/bench/search_status.md:
counts per experiment folder and every cell still flagged, with the bound its search hit.

    cdyn-reproduce --report-only     # with every other report (or cdyn_bench.measures.search_status.write)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cdyn_bench import search, table

def describe(df: pd.DataFrame, cell: list[str], row: dict) -> str:
    """'model.mixer.phi=exp, model.mixer.eta=one': the cell's values of the keys that vary in its first folder."""
    records = df[df["sweep_name"] == row["folders"].split(",")[0]]
    keys = [c for c in cell if records[c].nunique(dropna=False) > 1]
    return ", ".join(f"{k.replace('model.mixer.', '').replace('model.', '').replace('task.', '')}={row[k]}"
                     for k in keys)


def write(results: Path) -> Path:
    """Judge every cell under results/findings and results/principles; writes results/bench/search_status.md."""
    df, _ = table.load(search.experiment_records(results))
    cell = search.cell_columns(df, table.config_columns(df), table.NOT_CELL_KEYS)
    rule = search.SearchRule()
    below = search.status(df, cell, rule)
    flagged = below[below["lr_edge"] | below["at_cap"]]
    per = (below.assign(folder=below["folders"].str.split(",").str[0], flagged=below["lr_edge"] | below["at_cap"])
           .groupby("folder").agg(cells_below=("flagged", "size"), lr_edge=("lr_edge", "sum"), at_cap=("at_cap", "sum"),
                                  flagged=("flagged", "sum")).reset_index())
    shown = flagged.assign(cell=[describe(df, cell, row) for row in flagged.to_dict("records")])
    shown = shown[["folders", "cell", "best_lr", "lr_grid", "cap", "best_val", "lr_edge", "at_cap", "limit"]]
    text = ["# Cells whose verdict rests on the search (`cdyn-reproduce --report-only`)", "",
            f"{len(df)} records of results/findings and results/principles, pooled into "
            f"{df.groupby(cell, dropna=False).ngroups} cells (a config up to seed, lr and step cap); "
            f"{len(below)} below {rule.target} best mean validation accuracy; {len(flagged)} of them flagged "
            f"({int(flagged['lr_edge'].sum())} lr at a grid edge, {int(flagged['at_cap'].sum())} still learning at "
            "the cap; a cell may be both). Rule: cdyn_bench.search.SearchRule defaults.", "",
            "Per folder (a cell pooled over folders counts under the first):", "", per.to_markdown(index=False), "",
            "Every flagged cell (only the keys that vary among the records):", "",
            shown.round(4).to_markdown(index=False), ""]
    out = results / "bench" / "search_status.md"
    out.write_text("\n".join(text))
    return out
