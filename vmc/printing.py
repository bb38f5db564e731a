"""Printing graphs and compiled functions: ``debugprint`` (``vmc.dprint``), ``pydotprint``."""
from vmc.graph.printing import debugprint, pydotprint

__all__ = ["debugprint", "pydotprint"]
