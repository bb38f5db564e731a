"""How a CheckUpdates node runs: the shape check of each late in-place update
(``shape_check``), in Python, or as one C thunk of dim equalities
(``vmc.thunks._shapes.equal_dims_thunk``) that falls back on the Python checks
to say what is wrong.

Only ops whose sole runtime failure is a shape mismatch can be checked ahead
(elementwise, fused elementwise and the BLAS updates)."""
from __future__ import annotations

from vmc.tensor.blas_ops import Gemm, Gemv, Ger
from vmc.tensor.checks import CheckUpdates
from vmc.tensor.elemwise import Elemwise
from vmc.tensor.fused import FusedElemwise

from .broadcast import broadcast_shape, fixed_dims, shape_of
from .registry import module_or_none, register


def _elemwise_check(node, target):
    """Input ``target`` (the shared value) receives the result, so every other
    input must match its shape wherever that input's dim is not statically 1
    (the only dims that broadcast). Dims whose static sizes already agree are
    not looked at; None when nothing is left to look at."""
    ndim = node.outputs[0].type.ndim
    tshape = node.inputs[target].type.shape
    if any(t == 1 for t in tshape):
        return _broadcast_check(node)
    dims_of = []
    for k, v in enumerate(node.inputs):
        if k == target or v.type.ndim != ndim:
            continue
        dims = tuple(d for d, s in enumerate(v.type.shape)
                     if s != 1 and (s is None or tshape[d] is None or s != tshape[d]))
        if dims:
            dims_of.append((k, dims))
    if not dims_of:
        return None
    fixed = [()] * len(node.inputs)
    for k, dims in dims_of:
        fixed[k] = dims

    def check(*args):
        broadcast_shape(node.op, [shape_of(a) for a in args], fixed, shape_of(args[target]))
    check.terms = [(k, d, target, d) for k, dims in dims_of for d in dims]
    return check


def _broadcast_check(node):
    """The fused thunks' own check, when the target itself may broadcast."""
    fixed = [fixed_dims(v.type.shape) for v in node.inputs]

    def check(*args):
        broadcast_shape(node.op, [shape_of(a) for a in args], fixed)
    return check


# The same conditions as (arg, dim, arg, dim) equalities, for the C thunk of
# CheckUpdates (vmc/thunks/_shapes.pyx); args: z or a 0, x 2, y 3.
_BLAS_TERMS = {"Gemm": [(2, 1, 3, 0), (0, 0, 2, 0), (0, 1, 3, 1)],
               "Gemv": [(2, 1, 3, 0), (0, 0, 2, 0)],
               "Ger": [(0, 0, 2, 0), (0, 1, 3, 0)]}


def _blas_check(node):
    name = type(node.op).__name__

    def check(*args):
        z, x, y = shape_of(args[0]), shape_of(args[2]), shape_of(args[3])
        if name == "Gemm":      # z, alpha, x, y, beta
            ok = x[1] == y[0] and z == (x[0], y[1])
        elif name == "Gemv":    # z, alpha, a, x, beta
            ok = x[1] == y[0] and z == (x[0],)
        else:                   # Ger: a, alpha, x, y
            ok = z == (x[0], y[0])
        if not ok:
            raise ValueError(f"{node.op}: shapes {z}, {x}, {y} do not match")
    check.terms = _BLAS_TERMS[name]
    return check


UNCHECKABLE = object()


def shape_check(node, shared):
    """A function of the node's input values that raises exactly when the
    node's thunk would fail, None when it cannot fail on shapes, or
    ``UNCHECKABLE`` when the op cannot be checked ahead."""
    if isinstance(node.op, (Elemwise, FusedElemwise)) and len(node.outputs) == 1:
        return _elemwise_check(node, node.inputs.index(shared))
    if isinstance(node.op, (Gemm, Gemv, Ger)):
        return _blas_check(node)
    return UNCHECKABLE


def _node_checks(node):
    """``(check, first argument, end)`` of each node a CheckUpdates validates:
    its arguments are the nodes' inputs, one after the other."""
    out, k = [], 0
    for n, s in zip(node.op.nodes, node.op.shared):
        out.append((shape_check(n, s), k, k + len(n.inputs)))
        k += len(n.inputs)
    return out


@register(CheckUpdates, kind="c")
def check_updates_c_thunk(node, destroyable):
    """CheckUpdates whose checks are all equalities of dims, as one C thunk
    (``vmc.thunks._shapes.equal_dims_thunk``) that falls back on the Python
    checks to say what is wrong; None when one check is not an equality."""
    _shapes = module_or_none("vmc.thunks._shapes")
    if _shapes is None:
        return None
    checks = _node_checks(node)
    if any(getattr(c, "terms", None) is None for c, _, _ in checks):
        return None
    terms = [(a + k, i, b + k, j) for c, k, _ in checks for a, i, b, j in c.terms]
    return _shapes.equal_dims_thunk(terms, _python_checks(checks), len(node.inputs))


@register(CheckUpdates)
def check_updates_thunk(node, destroyable):
    return _python_checks(_node_checks(node))


def _python_checks(checks):
    def thunk(*args):
        for check, a, b in checks:
            check(*args[a:b])
        return ()
    return thunk
