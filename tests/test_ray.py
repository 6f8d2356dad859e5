"""A real Ray cluster on this machine: `ray start --head` and the README's sweep command
(`hydra/launcher=ray_cluster hydra.launcher.ray.init.address=auto`) in a network namespace whose only interface is
the loopback, so Ray binds 127.0.0.1 and nothing it sends can leave the machine; the records come back, a rerun
launches nothing, and `ray stop` leaves no Ray process. Slow (about a minute); needs the `ray` extra, root and
network namespaces: `pytest -m slow tests/test_ray.py`."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess

import pytest

from helpers import BIN, TINY, cli_env

pytestmark = pytest.mark.slow
PORT = 6380


def usable() -> str | None:
    """Why this machine cannot run the cluster, or None."""
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None:
        return "needs the ray extra: pip install -e '.[ray]'"
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode:
        return "cannot make a network namespace"
    return None


def test_a_sweep_through_a_local_ray_cluster_comes_back_on_the_loopback(tmp_path):
    if (why := usable()) is not None:
        pytest.skip(why)
    sweep = " ".join([str(BIN / "cdyn-run"), "-m", "hydra/launcher=ray_cluster", "hydra.launcher.ray.init.address=auto",
                      *TINY, "model=softmax,gated", "sweep_name=ray", f"out_dir={tmp_path / 'out'}"])
    script = f"""
set -e
ip link set lo up
ray start --head --node-ip-address=127.0.0.1 --port={PORT} --num-cpus=2 --include-dashboard=false \\
    --disable-usage-stats > ray_start.log 2>&1
stop() {{ ray stop --force > /dev/null 2>&1; sleep 2; (pgrep -a -x raylet; pgrep -a -x gcs_server) > still_running.txt || true; }}
trap stop EXIT
ss -ltn > listening.txt
ip -4 -o addr > addresses.txt
{sweep} > first.log 2>&1
{sweep} > again.log 2>&1
"""
    env = {**cli_env(tmp_path), "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin"}
    done = subprocess.run(["unshare", "-n", "bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    logs = {p.name: p.read_text() for p in tmp_path.glob("*.*") if p.is_file()}
    assert done.returncode == 0, (done.stderr + logs.get("first.log", "") + logs.get("ray_start.log", ""))[-3000:]
    assert re.search(r"Local node IP\S*: \S*127\.0\.0\.1", logs["ray_start.log"])
    listening = [line.split()[3] for line in logs["listening.txt"].splitlines()[1:]]
    assert listening and all(a.rsplit(":", 1)[0] in ("127.0.0.1", "[::ffff:127.0.0.1]") for a in listening), listening
    assert all(" lo " in line for line in logs["addresses.txt"].splitlines())
    assert len(list((tmp_path / "out").rglob("result.json"))) == 2
    assert "2/2 cells done" in logs["first.log"] and "[HYDRA] \t#" not in logs["again.log"], logs["again.log"][-2000:]
    assert logs.get("still_running.txt", "").strip() == ""
