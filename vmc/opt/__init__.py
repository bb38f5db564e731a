"""The rewrite pipeline. ``optimize(fgraph, mode, timings)`` runs the passes of
``mode`` ("fast_run", "fast_compile" or None) on a FunctionGraph in place."""
from .pipeline import optimize

__all__ = ["optimize"]
