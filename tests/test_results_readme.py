"""The numbers results/README.md quotes are those of the committed tables.

Every 'mean ± std' in the README (and its seed range, when one follows in brackets) must be a row of some
committed table.csv under results/, each value rounded once, from the full value, to the digits quoted. A
number typed from a table.md (already rounded to 4 digits) and rounded again, or mistyped, fails here. The
check does not know which cell a number names: a value copied from another row of some table passes, and
numbers quoted without a ± are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

RESULTS = Path(__file__).resolve().parents[1] / "results"
QUOTED = re.compile(r"(\d\.\d+) ± (\d\.\d+)(?:\*\*)?(?: \((\d\.\d+)\))?")
METRICS = [("test_accuracy_mean", "test_accuracy_std", "test_accuracy_range"),
           ("noise_mass_mean", "noise_mass_std", None)]


def table_rows() -> list[tuple[float, float, float | None]]:
    rows = []
    for path in sorted(RESULTS.rglob("table.csv")):
        df = pd.read_csv(path)
        for mean, std, spread in METRICS:
            if mean in df and std in df:
                ranges = df[spread] if spread in df else [None] * len(df)
                rows += [(m, 0.0 if pd.isna(s) else s, r) for m, s, r in zip(df[mean], df[std], ranges)]
    return rows


def rounds_to(value: float | None, text: str) -> bool:
    return value is not None and f"{value:.{len(text.split('.')[1])}f}" == text


def quoted() -> list[tuple[int, str, str, str | None]]:
    lines = (RESULTS / "README.md").read_text().splitlines()
    return [(i, *m.groups()) for i, line in enumerate(lines, 1) for m in QUOTED.finditer(line)]


@pytest.mark.skipif(not (RESULTS / "README.md").exists(), reason="no results/README.md")
def test_every_mean_and_std_quoted_in_the_results_readme_is_a_committed_table_row():
    rows, found = table_rows(), quoted()
    assert len(found) > 100  # the pattern still matches how the README writes its numbers
    missing = [f"line {i}: {mean} ± {std}" + (f" ({spread})" if spread else "")
               for i, mean, std, spread in found
               if not any(rounds_to(m, mean) and rounds_to(s, std) and (spread is None or rounds_to(r, spread))
                          for m, s, r in rows)]
    assert not missing, "no committed table.csv row rounds to: " + "; ".join(missing)
