"""Another git revision's package beside this one, for before/after comparisons (the benchmarks' --baseline)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def checkout(rev: str, into: Path, repo: Path = Path(".")) -> Path:
    """The package of revision `rev` of the repository `repo`, laid out as installed (tasks/ and conf/ inside
    cdyn_bench/) under `into`; returns the folder to put first on PYTHONPATH."""
    tree = into / "tree"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), rev], check=True,
                   capture_output=True)
    package = into / "site" / "cdyn_bench"
    shutil.copytree(tree / "cdyn_bench", package)
    shutil.copytree(tree / "tasks", package / "tasks")
    shutil.copytree(tree / "conf", package / "conf")
    subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=True)
    return into / "site"
