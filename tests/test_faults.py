"""Fault injection: writes that fail (disk full, read-only, no permission) at each place the runner and the
report write, and records damaged field by field. One line naming the file; finished records intact."""

from __future__ import annotations

import errno
import json
import os

import pandas as pd
import pytest

from cdyn_bench import atomic, record
from cdyn_bench.atomic import WriteFault
from cdyn_bench.table import load
from cdyn_bench.run import run
from helpers import TINY, compose

FAULTS = {"ENOSPC": errno.ENOSPC, "EROFS": errno.EROFS, "EACCES": errno.EACCES}


def failing_replace(name: str, code: int):
    """os.replace that refuses to put a file called `name` in place, as a full or read-only disk would."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(dst) == name:
            raise OSError(code, os.strerror(code), str(dst))
        return real(src, dst, *args, **kwargs)

    return replace


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", [record.PROGRESS, record.RESULT])
def test_a_write_that_fails_is_one_line_naming_the_file_and_keeps_finished_records(tmp_path, monkeypatch, name, fault):
    done = run(compose(*TINY, "seed=1"), tmp_path / "runs")
    before = (tmp_path / done.run_dir / record.RESULT).read_bytes()
    monkeypatch.setattr(atomic.os, "replace", failing_replace(name, FAULTS[fault]))
    with pytest.raises(WriteFault) as caught:
        run(compose(*TINY, "seed=2"), tmp_path / "runs")
    message = str(caught.value)
    assert name in message and os.strerror(FAULTS[fault]) in message and "\n" not in message
    assert (tmp_path / done.run_dir / record.RESULT).read_bytes() == before
    assert not list((tmp_path / "runs").rglob("*.tmp"))


def test_the_cli_turns_a_write_fault_into_exit_1_with_one_line(tmp_path, monkeypatch, capsys):
    from cdyn_bench.usage import report_usage_errors

    def fail():
        raise WriteFault(tmp_path / record.RESULT, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

    with pytest.raises(SystemExit) as caught:
        report_usage_errors(fail)
    lines = capsys.readouterr().err.strip().splitlines()
    assert caught.value.code == 1 and len(lines) == 1 and "No space left on device" in lines[0]


def test_a_report_that_cannot_write_exits_1_naming_no_record_as_lost(tmp_path, monkeypatch, capsys):
    from cdyn_bench.cli import report_main

    run(compose(*TINY), tmp_path / "runs")

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "report" / "table.csv"))

    monkeypatch.setattr(pd.DataFrame, "to_csv", refuse)
    with pytest.raises(SystemExit) as caught:
        report_main([str(tmp_path / "runs"), "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err.strip().splitlines()
    assert caught.value.code == 1 and len(err) == 1 and "table.csv" in err[0] and "untouched" in err[0]


DAMAGE = {
    "missing config": lambda r: r.pop("config"), "config a list": lambda r: r.update(config=[1]),
    "metrics null": lambda r: r.update(metrics=None), "metric a string": lambda r: r["metrics"].update(val_accuracy="hi"),
    "history numbers": lambda r: r.update(history=[1, 2]), "history a dict": lambda r: r.update(history={"a": 1}),
    "status running": lambda r: r.update(status="running"), "divergence a list": lambda r: r.update(divergence=[1]),
    "unknown field": lambda r: r.update(extra=1), "missing status": lambda r: r.pop("status"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_record_is_named_by_the_report_and_run_again(tmp_path, damage):
    cfg = compose(*TINY)
    first = run(cfg, tmp_path / "runs")
    path = tmp_path / first.run_dir / record.RESULT
    payload = json.loads(path.read_text())
    DAMAGE[damage](payload)
    path.write_text(json.dumps(payload))
    df, problems = load([tmp_path / "runs"])
    assert df.empty and len(problems) == 1 and str(path) in problems[0]
    again = run(cfg, tmp_path / "runs")
    assert not again.skipped and record.read_result(path).status == "completed"


def test_a_truncated_record_is_named_and_run_again(tmp_path):
    cfg = compose(*TINY)
    path = tmp_path / run(cfg, tmp_path / "runs").run_dir / record.RESULT
    path.write_bytes(path.read_bytes()[:100])
    assert str(path) in load([tmp_path / "runs"])[1][0]
    assert not run(cfg, tmp_path / "runs").skipped
