"""Kept for old commands: `python scripts/rerun.py ...` runs cdyn_bench.rerun (committed records trained again)."""

from cdyn_bench.rerun import main

if __name__ == "__main__":
    main()
