"""Atomic file writes (temp file in the same folder, fsync, rename), readable as a normal file would be."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; a record must be as readable as any file the user writes (0644 under
# the usual umask 022), so that colleagues on a shared file system can read it.
FILE_MODE = 0o666 & ~_umask()


class WriteFault(Exception):
    """A file could not be written (disk full, no permission, read-only file system): one line naming it."""

    def __init__(self, path: Path, err: OSError):
        super().__init__(f"{path}: cannot write ({err.strerror or err}); finished records are intact; "
                         "make room or fix the folder's permissions, then run the same command again")


def write_atomic(path: Path, write: Callable[[IO], None], mode: str = "w") -> None:
    """Call write(file) on a temp file beside `path`, then rename it over `path`; nothing is left on failure.
    WriteFault (naming `path`) when the file system refuses."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise WriteFault(path, err) from None
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise WriteFault(path, err) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
