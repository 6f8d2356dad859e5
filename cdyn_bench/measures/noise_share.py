"""The reference for readout_selectivity's noise mass: the share of noise tokens in the causal prefixes of the
query rows, which is the noise mass of coefficients that ignore content (uniform over j <= i).

A trained model below this share steers coefficient mass away from noise; at it, it does not select. Computed
on the same test sequences a run's noise_mass uses (the first 64 of the test split of each seed's data).

    cdyn-reproduce readout_selectivity --report-only   # writes results/principles/readout_selectivity/noise_share.*
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cdyn_bench.compose import compose
from cdyn_bench.data import TaskData
from cdyn_bench.run import SELECTIVITY_SEQUENCES
from cdyn_bench.tasks.roles import NOISE, QUERY, token_roles



def grid() -> tuple[list[float], list[int]]:
    """The experiment's own grid of noise fractions and seeds (conf/experiment/readout_selectivity.yaml)."""
    text = resources.files("cdyn_bench.conf").joinpath("experiment", "readout_selectivity.yaml").read_text()
    params = yaml.safe_load(text)["hydra"]["sweeper"]["params"]
    return [float(f) for f in str(params["task.frac_noise"]).split(",")], [int(s) for s in str(params["seed"]).split(",")]


def uniform_share(frac_noise: float, seed: int) -> float:
    cfg = compose("+experiment=readout_selectivity", f"task.frac_noise={frac_noise}", f"seed={seed}")
    data = TaskData(cfg.task, seed, cfg.train.batch_size)
    inputs, targets = data.test.inputs[:SELECTIVITY_SEQUENCES], data.test.targets[:SELECTIVITY_SEQUENCES]
    roles = token_roles(cfg.task.name, cfg.task.params, inputs, targets)
    prefix = np.cumsum(roles == NOISE, axis=1) / np.arange(1, roles.shape[1] + 1)
    return float(prefix[roles == QUERY].mean())


def write(folder: Path) -> Path:
    """The uniform noise share per noise fraction, over the experiment's seeds; writes
    <folder>/readout_selectivity/noise_share.{csv,md}."""
    fractions, seeds = grid()
    rows = [{"task.frac_noise": f, "seed": s, "uniform_noise_share": uniform_share(f, s)} for f in fractions for s in seeds]
    df = pd.DataFrame(rows)
    table = df.groupby("task.frac_noise")["uniform_noise_share"].agg(["mean", "min", "max"]).reset_index()
    out = folder / "readout_selectivity"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "noise_share.csv", index=False, float_format="%.4f")
    (out / "noise_share.md").write_text(table.to_markdown(index=False, floatfmt=".4f") + "\n")
    return out / "noise_share.md"
