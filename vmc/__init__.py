"""vmc: a symbolic tensor compiler in the spirit of Theano.

    import vmc, vmc.tensor as vt
    x = vt.matrix("x"); w = vmc.shared(np.zeros((3, 2)), name="w")
    cost = vt.sum(vt.dot(x, w) ** 2)
    step = vmc.function([x], cost, updates=[(w, w - 0.1 * vmc.grad(cost, w))])
"""
from .config import config
from . import tensor  # noqa: F401  (registers tensor variables)
from .compile.function import Function, function
from .compile.io import In, Out
from .graph import clone as _clone_graph  # noqa: F401
from .graph.traversal import clone_replace
from .gradient import grad
from .graph.basic import Apply, Op
from .printing import debugprint, pydotprint
from .tensor.basic import SHARED_CONSTRUCTORS as _SHARED_CONSTRUCTORS, shared
from . import thunks  # noqa: F401  (registers the CPU thunks)
from .opt import Mode
from . import scan  # noqa: F401  (callable: vmc.scan(fn, ...) as in Theano)
from .scan import foldl, foldr, map, reduce  # noqa: A004  (Theano's names)
from .ifelse import ifelse
from .compile import builders, ops  # noqa: F401  (OpFromGraph's thunk; as_op)
# Theano's top-level names (theano.Variable, theano.clone, theano.gof, ...).
from .graph.basic import Constant, Variable
from .graph.type import TensorType
from .graph.traversal import clone_replace as clone
from . import compile, gof, gradient, sandbox, scalar  # noqa: F401,A004

dprint = debugprint


def _device_shared(value, name=None, borrow=False, shape=None):
    """Float shared variables live on ``config.device`` when it is a GPU."""
    if config.device == "cpu":
        return None
    from vmc.gpu.shared import device_shared
    return device_shared(value, name=name, borrow=borrow, shape=shape)


_SHARED_CONSTRUCTORS.append(_device_shared)

__version__ = "0.1.0"

__all__ = ["config", "function", "Function", "Op", "Apply", "In", "Out", "Mode", "clone_replace", "grad",
           "debugprint", "dprint", "pydotprint", "shared", "tensor", "scan", "map",
           "reduce", "foldl", "foldr", "ifelse", "Constant", "Variable", "TensorType",
           "clone", "compile", "gof", "gradient", "sandbox", "scalar"]
