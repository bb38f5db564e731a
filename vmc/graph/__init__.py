"""The IR: types, variables, Apply, Op, FunctionGraph, traversal, clone, grad, printing."""
from .basic import Apply, Constant, Op, SharedVariable, Variable, user_line
from .fgraph import FunctionGraph
from .grad import DisconnectedInputError, NullGradient, NullGradientError, ZeroGradient, grad
from .traversal import (ancestors, clone, clone_get_equiv, clone_replace, free_inputs,
                        graph_inputs, toposort)
from .type import TensorType, Type

__all__ = ["Apply", "Constant", "Op", "SharedVariable", "Variable", "user_line",
           "FunctionGraph", "grad", "NullGradient", "ZeroGradient", "DisconnectedInputError",
           "NullGradientError", "ancestors", "clone", "clone_get_equiv", "clone_replace",
           "free_inputs", "graph_inputs", "toposort", "TensorType", "Type"]
