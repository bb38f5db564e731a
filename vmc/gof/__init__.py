"""Theano's ``theano.gof`` path: the graph classes under their old home
(``vmc.gof.Variable``, ``vmc.gof.graph.inputs``). vmc's own home is ``vmc.graph``."""
from vmc.graph.basic import Apply, Constant, Op, Variable
from vmc.graph.fgraph import FunctionGraph
from vmc.graph.type import Type

from . import graph  # noqa: F401

__all__ = ["Apply", "Constant", "Op", "Variable", "Type", "FunctionGraph", "graph"]
