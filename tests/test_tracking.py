"""W&B mirror: quiet, one W&B run per record, bounded when offline-only, never fails a run."""

from __future__ import annotations

import sys
import time

import pytest

from cdyn_bench import tracking
from cdyn_bench.record import RunResult
from cdyn_bench.tracking import mirror_to_wandb, open_run, wandb_id

HASH = "ab" * 32


def result(**overrides) -> RunResult:
    fields = dict(config={"model": {"name": "softmax"}, "seed": 0}, config_hash=HASH, status="completed", seed=0,
                  metrics={"test_accuracy": 0.5}, history=[{"step": 1, "train_loss": 1.0, "val_accuracy": 0.5}])
    return RunResult(**{**fields, **overrides})


@pytest.fixture
def wandb_on(monkeypatch, tmp_path):
    """W&B enabled (conftest disables it), its config and cache kept inside tmp_path."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))


def offline_runs(directory):
    return sorted(p.name for p in (directory / "wandb").glob("*run-*"))


def test_offline_mirror_prints_nothing(wandb_on, tmp_path, capfd, recwarn):
    mirror_to_wandb(result(), "offline", "sweep", tmp_path / "cell")
    out, err = capfd.readouterr()
    assert out == "" and err == "" and not [w for w in recwarn if "wandb" in str(w.filename)]
    [run] = offline_runs(tmp_path / "cell")
    assert run.startswith("offline-run-") and run.endswith(f"-{wandb_id(HASH, 'sweep')}")


def test_mirroring_a_record_twice_leaves_one_wandb_run(wandb_on, tmp_path, capfd):
    cell = tmp_path / "cell"
    mirror_to_wandb(result(), "offline", "sweep", cell)
    first = offline_runs(cell)
    mirror_to_wandb(result(metrics={"test_accuracy": 0.75}), "offline", "sweep", cell)  # force=true, same record
    runs = offline_runs(cell)
    assert len(first) == len(runs) == 1 and runs[0].endswith(wandb_id(HASH, "sweep"))
    assert capfd.readouterr() == ("", "")


def test_wandb_ids_are_short_deterministic_and_per_sweep():
    assert wandb_id(HASH) == HASH[:16] and wandb_id(HASH, None) == wandb_id(HASH, "")
    assert wandb_id(HASH, "a") == wandb_id(HASH, "a") != wandb_id(HASH, "b") != wandb_id(HASH)
    assert all(len(i) == 16 and set(i) <= set("0123456789abcdef") for i in (wandb_id(HASH), wandb_id(HASH, "a")))


def test_disabled_writes_nothing(tmp_path, capfd):
    mirror_to_wandb(result(), "offline", None, tmp_path / "cell")  # conftest: WANDB_MODE=disabled wins
    assert not (tmp_path / "cell").exists() and capfd.readouterr() == ("", "")


def online_without_network(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "https://192.0.2.1")  # TEST-NET-1: never answers


def one_warning(err: str, text: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and text in lines[0], err


def test_online_without_network_gives_up_quickly(wandb_on, tmp_path, capfd, monkeypatch):
    online_without_network(monkeypatch)
    monkeypatch.setattr(tracking, "SYNC_TIMEOUT_S", 2.0)
    start = time.perf_counter()
    mirror_to_wandb(result(), "online", "sweep", tmp_path / "cell")
    assert time.perf_counter() - start < 8
    out, err = capfd.readouterr()
    assert out == ""
    one_warning(err, "W&B sync failed, kept offline (no answer from W&B within 2 s)")
    assert len(offline_runs(tmp_path / "cell")) == 1  # still there for a later `wandb sync`


@pytest.mark.slow
def test_online_without_network_returns_within_15_s(wandb_on, tmp_path, capfd, monkeypatch):
    online_without_network(monkeypatch)
    start = time.perf_counter()
    mirror_to_wandb(result(), "online", "sweep", tmp_path / "cell")
    assert time.perf_counter() - start < 15
    one_warning(capfd.readouterr().err, "W&B sync failed")


def test_missing_wandb_is_one_warning(wandb_on, tmp_path, capfd, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    mirror_to_wandb(result(), "offline", None, tmp_path / "cell")
    one_warning(capfd.readouterr().err, "W&B mirror skipped: ModuleNotFoundError")


def test_failing_init_is_one_warning(wandb_on, tmp_path, capfd, monkeypatch):
    import wandb

    def boom(**kwargs):
        raise RuntimeError("no\nsecond line")

    monkeypatch.setattr(wandb, "init", boom)
    with open_run("offline", tmp_path, name="report", job_type="report", what="W&B logging") as run:
        assert run is None
    one_warning(capfd.readouterr().err, "W&B logging skipped: RuntimeError: no")


def test_failure_while_logging_is_one_warning(wandb_on, tmp_path, capfd):
    mirror_to_wandb(result(history=[{"train_loss": 1.0}]), "offline", None, tmp_path / "cell")  # no "step"
    one_warning(capfd.readouterr().err, "W&B mirror skipped: KeyError: 'step'")
    assert len(offline_runs(tmp_path / "cell")) == 1


def test_a_mirrored_record_is_a_train_job_tagged_by_model_task_and_sweep_with_its_record_as_artifact(
        wandb_on, tmp_path, monkeypatch, capfd):
    import wandb

    seen, real_init = {}, wandb.init

    def spy_init(**kwargs):
        seen.update(kwargs)
        run = real_init(**kwargs)
        real_log = run.log_artifact
        run.log_artifact = lambda artifact, **kw: (seen.setdefault("artifacts", []).append(artifact), real_log(artifact, **kw))
        return run

    monkeypatch.setattr(wandb, "init", spy_init)
    cell = tmp_path / "cell"
    cell.mkdir()
    (cell / "result.json").write_text("{}")
    config = {"model": {"name": "softmax"}, "task": {"name": "mqar"}, "seed": 0}
    mirror_to_wandb(result(config=config), "offline", "sweep", cell)
    assert seen["job_type"] == "train" and seen["tags"] == ["model:softmax", "task:mqar", "sweep:sweep"]
    [artifact] = seen["artifacts"]
    assert artifact.type == "run-record" and "result.json" in artifact.manifest.entries
