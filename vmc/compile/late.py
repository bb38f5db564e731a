"""In-place updates placed last, and the check that keeps them all-or-nothing.

``w - lr * g`` may be computed into ``w``'s own buffer when it runs after
everything else that can fail (DESIGN: a failed call changes no shared
variable). With one such update that is enough: its thunk checks shapes
before it writes. With several, the second could fail after the first wrote,
so a ``CheckUpdates`` instruction runs before them and validates every one of
them against the runtime shapes; after it, none of them can fail.

Only ops whose sole runtime failure is a shape mismatch can be checked this
way (elementwise, fused elementwise and the BLAS updates); with several late
updates, the others are computed out of place as usual.
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Apply, Op
from vmc.thunks.registry import build_each, register, register_c_builder


def _shape(a):
    # np.shape costs ~1 us through numpy's dispatch; arrays carry their shape.
    return a.shape if type(a) is np.ndarray else np.shape(a)


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

    def check(*args):
        want = _shape(args[target])
        for k, dims in dims_of:
            have = _shape(args[k])
            for d in dims:
                if have[d] != want[d]:
                    raise ValueError(
                        f"{node.op}: input shapes {', '.join(str(np.shape(a)) for a in args)} "
                        f"do not match (input {k}, dim {d}: {have[d]} vs {want[d]}; only dims "
                        f"of static length 1 broadcast)")
    check.terms = [(k, d, target, d) for k, dims in dims_of for d in dims]
    return check


def _broadcast_check(node):
    """The fused thunks' own check, when the target itself may broadcast."""
    from vmc.opt.thunks import check_static_broadcast, static_broadcast_checks
    ndim = node.outputs[0].type.ndim
    checks = static_broadcast_checks(node)

    def check(*args):
        check_static_broadcast(node, args, checks, ndim)
    return check


# The same conditions as (arg, dim, arg, dim) equalities, for the C thunk of
# CheckUpdates (vmc/thunks/_shapes.pyx); args: z or a 0, x 2, y 3.
_BLAS_TERMS = {"Gemm": [(2, 1, 3, 0), (0, 0, 2, 0), (0, 1, 3, 1)],
               "Gemv": [(2, 1, 3, 0), (0, 0, 2, 0)],
               "Ger": [(0, 0, 2, 0), (0, 1, 3, 0)]}


def _blas_check(node):
    name = type(node.op).__name__

    def check(*args):
        z, x, y = _shape(args[0]), _shape(args[2]), _shape(args[3])
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


_UNCHECKABLE = object()


def shape_check(node, shared):
    """A function of the node's input values that raises exactly when the
    node's thunk would fail, None when it cannot fail on shapes, or
    ``_UNCHECKABLE`` when the op cannot be checked ahead."""
    from vmc.opt.blas import Gemm, Gemv, Ger
    from vmc.opt.fusion import FusedElemwise
    from vmc.tensor.elemwise import Elemwise
    if isinstance(node.op, (Elemwise, FusedElemwise)) and len(node.outputs) == 1:
        return _elemwise_check(node, node.inputs.index(shared))
    if isinstance(node.op, (Gemm, Gemv, Ger)):
        return _blas_check(node)
    return _UNCHECKABLE


class CheckUpdates(Op):
    """Validates the shapes of the late in-place updates before any writes."""
    __props__ = ()

    def __init__(self, nodes, shared):
        self.nodes = list(nodes)
        self.shared = list(shared)     # the shared variable each node writes into

    def __str__(self):
        return f"CheckUpdates{{{len(self.nodes)}}}"


def restrict(late):
    """``late`` (node -> shared variable) reduced to what can be all-or-nothing,
    and the check node to run before them (None when not needed)."""
    if len(late) <= 1:
        return late, None
    checks = {n: shape_check(n, s) for n, s in late.items()}
    late = {n: s for n, s in late.items() if checks[n] is not _UNCHECKABLE}
    needed = [n for n in late if checks[n] is not None]
    if len(late) <= 1 or not needed:
        return late, None
    inputs = [v for n in needed for v in n.inputs]
    return late, Apply(CheckUpdates(needed, [late[n] for n in needed]), inputs, [])


def _node_checks(node):
    """``(check, first argument, end)`` of each node a CheckUpdates validates:
    its arguments are the nodes' inputs, one after the other."""
    out, k = [], 0
    for n, s in zip(node.op.nodes, node.op.shared):
        out.append((shape_check(n, s), k, k + len(n.inputs)))
        k += len(n.inputs)
    return out


def _check_updates_c_thunk(_shapes, node, destroyable):
    """CheckUpdates whose checks are all equalities of dims, as one C thunk
    (``vmc.thunks._shapes.equal_dims_thunk``) that falls back on the Python
    checks to say what is wrong; None when one check is not an equality."""
    if not isinstance(node.op, CheckUpdates):
        return None
    checks = _node_checks(node)
    if any(getattr(c, "terms", None) is None for c, _, _ in checks):
        return None
    terms = [(a + k, i, b + k, j) for c, k, _ in checks for a, i, b, j in c.terms]
    return _shapes.equal_dims_thunk(terms, _python_checks(checks), len(node.inputs))


@register_c_builder
def check_updates_c_builder(items):
    """The CheckUpdates nodes that ``_check_updates_c_thunk`` takes."""
    return build_each(items, "vmc.thunks._shapes", _check_updates_c_thunk)


@register(CheckUpdates)
def check_updates_thunk(node, destroyable):
    return _python_checks(_node_checks(node))


def _python_checks(checks):
    def thunk(*args):
        for check, a, b in checks:
            check(*args[a:b])
        return ()
    return thunk
