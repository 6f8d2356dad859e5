"""Kept for old commands: `python scripts/reproduce.py ...` is `cdyn-reproduce ...` (cdyn_bench.reproduce)."""

from cdyn_bench.reproduce import main

if __name__ == "__main__":
    main()
