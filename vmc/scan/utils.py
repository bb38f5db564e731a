"""Small helpers of the scan package: ``until``, type checks, graph walks."""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Constant, Variable
from vmc.graph.traversal import toposort
from vmc.graph.type import TensorType


class until:
    """``return outputs, vmc.scan.until(cond)``: stop after the step where
    ``cond`` (a scalar) is true. That step's outputs are kept."""

    def __init__(self, condition):
        from vmc.tensor.basic import as_tensor_variable
        cond = as_tensor_variable(condition)
        if cond.type.ndim != 0:
            raise TypeError(f"scan: until() takes a scalar condition, got {cond.type}")
        self.condition = cond

    def __repr__(self):
        return f"until({self.condition!r})"


def is_tensor(v):
    return isinstance(v.type, TensorType)


def is_float_tensor(v):
    return is_tensor(v) and v.type.dtype.startswith(("float", "complex"))


def elem_type(t):
    """The type of one entry along the first dim of the tensor type ``t``."""
    return TensorType(t.dtype, t.shape[1:])


def stacked_type(t):
    """The type of a stack of values of type ``t`` (a new unknown first dim)."""
    return TensorType(t.dtype, (None,) + t.shape)


def placeholder(type_, name=None):
    """A fresh graph input of ``type_``."""
    return type_.make_variable(name)


def inner_nodes(outputs, placeholders):
    """Split the graph of ``outputs`` into the loop body and the work hoisted
    out of it.

    Returns ``(nodes, boundary, depends)``. ``nodes``, in topological order,
    run at every step: those that depend on some placeholder, plus invariant
    work that only a lazy ``ifelse`` branch needs (hoisting it would run it
    eagerly, and its errors would surface). ``boundary`` lists, in a
    deterministic order, the non-constant variables the body reads (or
    returns) without computing them: they are computed once, outside the
    loop. ``depends`` is the set of variables that depend on a placeholder.
    """
    from vmc.ifelse import IfElse
    depends = set(placeholders)
    order = toposort(outputs, blockers=depends)
    for node in order:
        if any(v in depends for v in node.inputs):
            depends.update(node.outputs)
    eager, lazy = set(outputs), set()
    body = set()
    for node in reversed(order):
        is_eager = any(o in eager for o in node.outputs)
        if not is_eager and not any(o in lazy for o in node.outputs):
            continue
        varies = any(o in depends for o in node.outputs)
        if not varies and is_eager:
            continue                      # hoisted: computed once, outside
        body.add(node)
        if not is_eager:
            lazy.update(node.inputs)
        elif isinstance(node.op, IfElse):
            eager.add(node.inputs[0])
            lazy.update(node.inputs[1:])
        else:
            eager.update(node.inputs)
    nodes = [n for n in order if n in body]
    made = set()
    for n in nodes:
        made.update(n.outputs)
    boundary, seen = [], set()

    def add(v):
        if v not in made and v not in seen and v not in placeholders_set \
                and not isinstance(v, Constant):
            seen.add(v)
            boundary.append(v)
    placeholders_set = set(placeholders)
    for node in nodes:
        for v in node.inputs:
            add(v)
    for v in outputs:
        add(v)
    return nodes, boundary, depends


def is_zero_grad(g):
    """True for a gradient known to be all zeros (what grad() passes for an
    output that received none): an Alloc of the constant 0, possibly under a
    SpecifyShape."""
    from vmc.tensor.shape import Alloc, SpecifyShape
    if g is None:
        return True
    while g.owner is not None and isinstance(g.owner.op, SpecifyShape):
        g = g.owner.inputs[0]
    if g.owner is not None and isinstance(g.owner.op, Alloc):
        g = g.owner.inputs[0]
    return isinstance(g, Constant) and g.data.size > 0 and not np.any(g.data)


def as_variable(x, what):
    from vmc.tensor.basic import as_tensor_variable
    if isinstance(x, Variable):
        return x
    try:
        return as_tensor_variable(x)
    except Exception as exc:
        raise TypeError(f"scan: {what} must be a variable or an array, got "
                        f"{type(x).__name__}: {exc}") from None


def _strip_specify(g):
    from vmc.tensor.shape import SpecifyShape
    while g.owner is not None and isinstance(g.owner.op, SpecifyShape):
        g = g.owner.inputs[0]
    return g


def tail_grad(g, lag):
    """``h`` when ``g = inc_subtensor(zeros_like(x)[lag:], h)``: a gradient
    that reached only ``x[lag:]``, which is what grad makes of the
    ``trace[lag:]`` that ``vmc.scan`` returns for a fed-back output. Reading
    ``h`` spares allocating, zeroing and filling a copy of the whole trace."""
    from vmc.tensor.subtensor import IncSubtensor
    g = _strip_specify(g)
    node = g.owner
    if node is None or not isinstance(node.op, IncSubtensor) or len(node.inputs) != 3:
        return None
    x, h, start = node.inputs
    if node.op.template != (("slice", True, False, False),) or not is_zero_grad(x):
        return None
    if not isinstance(start, Constant) or start.data.ndim != 0 or int(start.data) != lag:
        return None
    # h must fill x[lag:] by itself, not broadcast along the first dim
    if h.type.ndim != x.type.ndim or h.type.shape[0] == 1:
        return None
    return h


def broadcast_row(g):
    """``r`` (broadcastable to one entry ``g[t]``) when every entry of ``g``
    along its first dim is the same: ``g`` is an Alloc whose value does not
    vary along that dim (the gradient of a sum or a mean). A loop can then
    read ``r`` once as a non-sequence instead of a whole sequence of copies."""
    from vmc.tensor.elemwise import DimShuffle
    from vmc.tensor.shape import Alloc
    g = _strip_specify(g)
    node = g.owner
    if node is None or not isinstance(node.op, Alloc) or not is_float_tensor(g):
        return None
    value = node.inputs[0]
    nd, vd = len(node.inputs) - 1, value.type.ndim
    if vd == nd:
        if value.type.shape[0] != 1:
            return None
        return DimShuffle(nd, tuple(range(1, nd)))(value)      # drop the dim of length 1
    if vd < nd - 1:                                             # as many dims as a row
        value = DimShuffle(vd, ("x",) * (nd - 1 - vd) + tuple(range(vd)))(value)
    return value
