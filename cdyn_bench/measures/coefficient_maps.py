"""The central picture: coefficient maps alpha_ij (with the task's roles) of the headline models.

Trains seed 0 of five committed cells again with train.save_weights (each cell's learning rate is the one
its sweep chose on validation; the configs equal those records', hash for hash), into
results/maps/records/runs, and draws `cdyn-report --maps` into results/maps. The weights are committed
beside the records, so the maps regenerate without training; a rerun trains only what is missing.

    cdyn-reproduce coefficient_maps     # trains what is missing, then draws the maps
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

# name -> (experiment, overrides): finding 1's eta = one vs sum, finding 3's A = 1.05 I (eta = sum), and a
# readout that recalls through noise (exp) beside one that does not (identity with eta = abs_sum).
CELLS = {
    "eta_one": ("normalization", ["+evolution=identity_rotary", "model.mixer.eta=one", "model.mixer.phi=exp", "train.lr=3e-3"]),
    "eta_sum": ("normalization", ["+evolution=identity_rotary", "model.mixer.eta=sum", "model.mixer.phi=exp", "train.lr=3e-3"]),
    "unstable_sum": ("unstable_evolution", ["model.mixer.gamma=1.05", "model.mixer.eta=sum", "model.mixer.phi=exp",
                                            "train.lr=3e-3"]),
    "readout_exp": ("readout_selectivity", ["model.mixer.phi=exp", "task.frac_noise=0.4", "train.lr=3e-3"]),
    "readout_identity": ("readout_selectivity", ["model.mixer.phi=identity", "task.frac_noise=0.4", "train.lr=1e-3"]),
}


def tool(name: str) -> str:
    script = Path(sys.executable).parent / name
    return str(script) if script.exists() else name


def write(out: Path, quick: bool = False) -> Path:
    """Train seed 0 of each cell with its weights into <out>/records/runs (what is missing; with quick, 60 steps);
    cdyn-reproduce draws the maps (cdyn-report --maps) afterwards."""
    records = out / "records"
    for experiment, overrides in CELLS.values():
        command = [tool("cdyn-run"), f"+experiment={experiment}", *overrides, "seed=0", "hydra.mode=RUN",
                   "train.save_weights=true", "train.num_threads=1", f"out_dir={records}", "progress=false",
                   "wandb=disabled", *(["train.max_steps=60", "train.eval_every=30"] if quick else [])]
        print("$ " + shlex.join(command), flush=True)
        subprocess.run(command, check=True)
    return records
