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
from vmc.thunks.registry import register


def _elemwise_check(node):
    ndim = node.outputs[0].type.ndim
    static = [tuple(s == 1 for s in v.type.shape) for v in node.inputs]

    def check(*args):
        shapes = [np.shape(a) for a in args]
        loop = [max((s[d] for s in shapes if len(s) == ndim), default=1)
                for d in range(ndim)]
        for k, (s, one) in enumerate(zip(shapes, static)):
            if len(s) != ndim:
                continue            # a Python scalar: broadcasts by type
            for d in range(ndim):
                if s[d] != loop[d] and not one[d]:
                    raise ValueError(
                        f"{node.op}: input shapes {', '.join(map(str, shapes))} do not "
                        f"match (input {k}, dim {d}: {s[d]} vs {loop[d]}; only dims of "
                        f"static length 1 broadcast)")
    return check


def _blas_check(node):
    name = type(node.op).__name__

    def check(*args):
        s = [np.shape(a) for a in args]
        if name == "Gemm":      # z, alpha, x, y, beta
            ok = s[2][1] == s[3][0] and s[0] == (s[2][0], s[3][1])
        elif name == "Gemv":    # z, alpha, a, x, beta
            ok = s[2][1] == s[3][0] and s[0] == (s[2][0],)
        else:                   # Ger: a, alpha, x, y
            ok = s[0] == (s[2][0], s[3][0])
        if not ok:
            raise ValueError(f"{node.op}: shapes {', '.join(map(str, s))} do not match")
    return check


def shape_check(node):
    """A function of the node's input values that raises exactly when the
    node's thunk would fail, or None when the op cannot be checked ahead."""
    from vmc.opt.blas import Gemm, Gemv, Ger
    from vmc.opt.fusion import FusedElemwise
    from vmc.tensor.elemwise import Elemwise
    if isinstance(node.op, (Elemwise, FusedElemwise)) and len(node.outputs) == 1:
        return _elemwise_check(node)
    if isinstance(node.op, (Gemm, Gemv, Ger)):
        return _blas_check(node)
    return None


class CheckUpdates(Op):
    """Validates the shapes of the late in-place updates before any writes."""
    __props__ = ()

    def __init__(self, nodes):
        self.nodes = list(nodes)

    def __str__(self):
        return f"CheckUpdates{{{len(self.nodes)}}}"


def restrict(late):
    """``late`` (node -> shared variable) reduced to what can be all-or-nothing,
    and the check node to run before them (None when not needed)."""
    if len(late) <= 1:
        return late, None
    late = {n: s for n, s in late.items() if shape_check(n) is not None}
    if len(late) <= 1:
        return late, None
    nodes = list(late)
    inputs = [v for n in nodes for v in n.inputs]
    return late, Apply(CheckUpdates(nodes), inputs, [])


@register(CheckUpdates)
def check_updates_thunk(node, destroyable):
    checks, bounds, k = [], [], 0
    for n in node.op.nodes:
        checks.append(shape_check(n))
        bounds.append((k, k + len(n.inputs)))
        k += len(n.inputs)

    def thunk(*args):
        for check, (a, b) in zip(checks, bounds):
            check(*args[a:b])
        return ()
    return thunk
