"""The transfer table's verdicts from known seed values: which arm the text favours, by Welch's t and the bootstrap
interval, diverged arms, and rows whose synthetic verdict was 'no difference'."""

from __future__ import annotations

import math

import pandas as pd

from cdyn_bench.measures.transfer import BACKBONE, Row, compare_row


def runs(bits_a: list[float], bits_b: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records of the backbone at eta = sum (bits_a) and eta = one (bits_b), one per seed, and no search flags."""
    rows = [{**BACKBONE, "model.mixer.eta": eta, "seed": seed, "test_bits_per_char": bits}
            for eta, values in (("sum", bits_a), ("one", bits_b)) for seed, bits in enumerate(values)]
    df = pd.DataFrame(rows)
    flags = df.drop(columns=["seed", "test_bits_per_char"]).drop_duplicates().assign(lr_edge=False, at_cap=False)
    return df, flags


ROW = Row("1. normalisation", "model.mixer.eta", "sum", "one", "eta = sum is better")


def verdict(a, b, row=ROW) -> str:
    return compare_row(row, *runs(a, b))["carries over"]


def test_a_clear_difference_in_the_favoured_direction_carries_over_and_the_other_way_is_reversed():
    assert verdict([2.40, 2.41, 2.42], [2.80, 2.81, 2.79]) == "yes"
    assert verdict([2.80, 2.81, 2.79], [2.40, 2.41, 2.42]) == "reversed"
    assert verdict([2.40, 2.60, 2.50], [2.45, 2.55, 2.52]) == "no clear difference on text"


def test_diverged_arms_and_rows_that_expected_no_difference():
    assert verdict([2.4, 2.5, 2.45], [math.nan] * 3) == "yes: eta=one diverged (3 of 3 seeds)"
    assert verdict([math.nan, 2.5, 2.45], [2.4, 2.5, 2.45]).startswith("reversed: eta=sum diverged (1 of 3")
    equal = Row("3.", "model.mixer.eta", "sum", "one", "no difference", equal=True)
    assert verdict([2.40, 2.60, 2.50], [2.45, 2.55, 2.52], equal) == "yes: no clear difference on text"
    assert verdict([2.40, 2.41, 2.42], [2.80, 2.81, 2.79], equal) == "no: eta=sum better on text"
    assert verdict([2.4], [2.5]) == "not run yet (1 and 1 seeds)"


def test_arms_judged_at_different_caps_say_so():
    df, flags = runs([2.40, 2.41, 2.42], [2.80, 2.81, 2.79])
    df["train.lr"] = 0.01
    df["train.max_steps"] = [600] * 3 + [1800] * 3
    row = compare_row(ROW, df, flags)
    assert (row["point favoured"], row["point other"]) == ("lr 0.01, 600 steps", "lr 0.01, 1,800 steps")
    assert row["carries over"] == "yes (at unequal steps)"
    df["train.max_steps"] = 600
    assert compare_row(ROW, df, flags)["carries over"] == "yes"
