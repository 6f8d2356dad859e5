"""Principle 1's measurement (cdyn_bench.measures.inference_cost) and its report, remade by cdyn-report from the measurements."""

from __future__ import annotations

import subprocess

import pandas as pd
from helpers import BIN

from cdyn_bench.measures import inference_cost


def test_the_report_remakes_the_measured_table_and_the_caches_grow_only_for_softmax(tmp_path):
    measured = tmp_path / "measured"
    inference_cost.write(measured, steps=2, presets=["softmax", "gated"], lengths=(8, 32))
    df = pd.read_csv(measured / "finite_state.csv").set_index(["preset", "context"])
    # A KV cache holds every past token; a linear readout's state does not depend on L.
    assert df.loc[("softmax", 32), "cache_floats"] > df.loc[("softmax", 8), "cache_floats"]
    assert df.loc[("gated", 32), "cache_floats"] == df.loc[("gated", 8), "cache_floats"]
    assert (df["cache_floats"] == df["state_size"]).all() and df["max_abs_diff_vs_forward"].max() < 1e-5
    reports = [tmp_path / "report", tmp_path / "again"]
    for out in reports:
        proc = subprocess.run([str(BIN / "cdyn-report"), str(measured), "--finite-state", "--out", str(out)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    for name in ("finite_state.md", "finite_state.png"):  # remade from the measurements, byte for byte
        assert (reports[0] / name).read_bytes() == (reports[1] / name).read_bytes()


def test_a_folder_without_measurements_is_one_line(tmp_path):
    proc = subprocess.run([str(BIN / "cdyn-report"), str(tmp_path), "--finite-state"], capture_output=True, text=True)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "finite_state.csv" in proc.stderr
