"""cdyn-bench: coefficient-dynamics sequence models on synthetic recall tasks."""

__version__ = "0.1.0"
