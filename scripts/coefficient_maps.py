"""The central picture: coefficient maps alpha_ij (with the task's roles) of the headline models.

Trains seed 0 of five committed cells again with train.save_weights (each cell's learning rate is the one
its sweep chose on validation; the configs equal those records', hash for hash), into
results/maps/records/runs, and draws `cdyn-report --maps` into results/maps. The weights are committed
beside the records, so the maps regenerate without training; a rerun trains only what is missing.

    python scripts/coefficient_maps.py [--out results/maps]
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "maps")
    parser.add_argument("--report-only", action="store_true", help="draw the maps from the committed weights")
    parser.add_argument("--quick", action="store_true", help="60 training steps each (a smoke test, not the maps)")
    parser.add_argument("--no-report", action="store_true", help="train only (reproduce.py draws the maps itself)")
    args = parser.parse_args()
    records = args.out / "records"
    if not args.report_only:
        for experiment, overrides in CELLS.values():
            command = [tool("cdyn-run"), f"+experiment={experiment}", *overrides, "seed=0", "hydra.mode=RUN",
                       "train.save_weights=true", "train.num_threads=1", f"out_dir={records}", "progress=false",
                       "wandb=disabled",
                       *(["train.max_steps=60", "train.eval_every=30"] if args.quick else [])]
            print("$ " + shlex.join(command), flush=True)
            subprocess.run(command, cwd=ROOT, check=True)
    if not args.no_report:
        subprocess.run([tool("cdyn-report"), str(records), "--maps", "--out", str(args.out)], cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
