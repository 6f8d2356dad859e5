"""Tests of a difference between two arms over seeds: Welch's t and a bootstrap interval of the mean difference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Welch's t of mean(a) - mean(b), its Welch-Satterthwaite degrees of freedom); nan with < 2 seeds an arm.
    Two arms without spread are infinitely far apart when their means differ, not different when equal."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = a.mean() - b.mean()
    if va + vb == 0:
        return (0.0 if diff == 0 else math.copysign(math.inf, diff)), math.nan
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va and vb else len(a) + len(b) - 2
    return diff / math.sqrt(va + vb), dof


def two_sided_p(t: float, dof: float) -> float:
    """P(|T| >= |t|) for Student's t with `dof` >= 1 degrees of freedom: the density integrated over
    theta = arctan(x / sqrt(dof)), where it is cos(theta)^(dof - 1) up to a constant (no tail is cut)."""
    if math.isnan(t) or math.isnan(dof):
        return math.nan
    if math.isinf(t):
        return 0.0
    theta = np.linspace(math.atan(abs(t) / math.sqrt(dof)), math.pi / 2, 200_001)
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(math.pi)
    return float(min(1.0, 2 * math.exp(log_norm) * np.trapezoid(np.cos(theta) ** (dof - 1), theta)))


def bootstrap_interval(a: np.ndarray, b: np.ndarray, level: float = 0.95, draws: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """The `level` percentile interval of mean(a) - mean(b), resampling the seeds of each arm (fixed seed)."""
    rng = np.random.default_rng(seed)
    diffs = (rng.choice(a, (draws, len(a))).mean(1) - rng.choice(b, (draws, len(b))).mean(1))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)


COMPARE_COLUMNS = ["arm_a", "arm_b", "mean_a", "mean_b", "seeds_a", "seeds_b", "difference", "welch_t", "dof", "p",
                   "ci_low", "ci_high", "clear"]


def compare(runs: pd.DataFrame, arm: str, keys: list[str], metric: str = "test_accuracy") -> pd.DataFrame:
    """Per group of `keys` and pair of values of `arm`: each arm's mean and seeds, the difference, Welch's t and
    the bootstrap 95% interval; `clear` when Welch's p < 0.05 and the interval excludes 0 (with 3 seeds the
    percentile bootstrap alone calls a 0.998-vs-1.000 difference clear). `runs` are one setting per arm and seed
    (e.g. table.select_best's), a diverged seed already counted as 0."""
    rows = []
    for group, part in runs.groupby(keys, dropna=False, sort=True) if keys else [((), runs)]:
        values = {v: part.loc[part[arm] == v].sort_values("seed")[metric].to_numpy(float)
                  for v in sorted(part[arm].unique(), key=str)}
        for (va, a), (vb, b) in itertools.combinations(values.items(), 2):
            t, dof = welch(a, b)
            p = two_sided_p(t, dof)
            low, high = bootstrap_interval(a, b)
            rows.append({**dict(zip(keys, group if isinstance(group, tuple) else (group,))),
                         "arm_a": va, "arm_b": vb, "mean_a": a.mean(), "mean_b": b.mean(),
                         "seeds_a": " ".join(f"{x:.3f}" for x in a), "seeds_b": " ".join(f"{x:.3f}" for x in b),
                         "difference": a.mean() - b.mean(), "welch_t": t, "dof": dof, "p": p, "ci_low": low,
                         "ci_high": high, "clear": bool((low > 0 or high < 0) and p < 0.05)})
    return pd.DataFrame(rows, columns=[*keys, *COMPARE_COLUMNS])
