"""The resuming sweeper as a Hydra plugin (Hydra instantiates sweepers only from the hydra_plugins package)."""

from cdyn_bench.sweeper import Resuming


class ResumingSweeper(Resuming):
    """cdyn_bench.sweeper.Resuming, registered where Hydra looks for plugins."""
