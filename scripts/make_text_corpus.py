"""Build tasks/corpora/python_stdlib.txt.xz, the text task's corpus, from CPython 3.11.7's standard library.

The corpus is the 168 top-level modules of the standard library (`Lib/*.py`, no packages, no tests), in
name order, each as it ships, concatenated: 4,698,388 bytes of Python source with its comments and
docstrings (UTF-8; a few non-ASCII characters). Licence: the PSF License Agreement (copied beside it as
tasks/corpora/LICENSE.python_stdlib.txt). The committed file is what the task reads; this script only
shows where it came from and checks that a rebuild gives the same bytes (cdyn_bench.tasks.corpus.CORPORA holds
the sha256 of the decompressed text).

    python scripts/make_text_corpus.py            # rebuild from this interpreter's stdlib (must be 3.11.7)
    python scripts/make_text_corpus.py --check    # only compare with the committed corpus
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import shutil
import sys
import sysconfig
from pathlib import Path

from cdyn_bench.tasks.corpus import CORPORA, CORPUS_DIR

VERSION = (3, 11, 7)


def build() -> bytes:
    if sys.version_info[:3] != VERSION:
        raise SystemExit(f"make_text_corpus: error: needs CPython {'.'.join(map(str, VERSION))}'s standard library, "
                         f"this is {sys.version.split()[0]}")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return b"".join(p.read_bytes() for p in sorted(stdlib.glob("*.py")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with the committed corpus, write nothing")
    args = p.parse_args()
    text = build()
    digest = hashlib.sha256(text).hexdigest()
    expected = CORPORA["python_stdlib"].sha256
    print(f"{len(text):,} bytes, sha256 {digest} ({'matches' if digest == expected else 'differs from'} the committed one)")
    if args.check:
        sys.exit(digest != expected)
    (CORPUS_DIR / "python_stdlib.txt.xz").write_bytes(lzma.compress(text, preset=9 | lzma.PRESET_EXTREME))
    shutil.copyfile(Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt", CORPUS_DIR / "LICENSE.python_stdlib.txt")


if __name__ == "__main__":
    main()
