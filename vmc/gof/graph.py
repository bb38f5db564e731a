"""Theano's ``theano.gof.graph`` functions, over vmc's traversals."""
from __future__ import annotations

from vmc.graph.basic import Apply, Constant, Variable  # noqa: F401
from vmc.graph.traversal import ancestors as _ancestors
from vmc.graph.traversal import clone, graph_inputs, toposort  # noqa: F401

__all__ = ["Apply", "Constant", "Variable", "inputs", "ancestors", "variables", "clone",
           "io_toposort", "toposort"]


def inputs(variable_list, blockers=None):
    """The ownerless variables (inputs, shared variables, constants) that
    ``variable_list`` depends on, in a deterministic order."""
    return graph_inputs(list(variable_list), blockers or ())


def ancestors(variable_list, blockers=None):
    """Every variable ``variable_list`` depends on, themselves included."""
    return _ancestors(list(variable_list), blockers or ())


def io_toposort(inputs, outputs):
    """The nodes between ``inputs`` and ``outputs``, in a topological order."""
    return toposort(list(outputs), blockers=list(inputs))


def variables(i, o):
    """The variables on a path from the inputs ``i`` to the outputs ``o``."""
    return _ancestors(list(o), list(i))
