"""canonicalize: one way to write each thing, so later passes match less.

Algebraic chains live in ``chains.py``; here: templates, DimShuffle, Reshape,
cast, shapes and sums.
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Constant, Variable
from vmc.tensor import elemwise as E
from vmc.tensor.basic import constant
from vmc.tensor.creation import ARange
from vmc.tensor.elemwise import DimShuffle, Elemwise, cast, const_data, const_value, dimshuffle
from vmc.tensor.grad_ops import ViewOp
from vmc.tensor.math import CAReduce
from vmc.tensor.shape import Alloc, MakeVector, Reshape, Shape, ShapeI, alloc
from vmc.tensor.subtensor import Subtensor

from . import chains  # noqa: F401  (registers add_chain and mul_chain)
from .patterns import register_patterns
from .rewriting import is_op, is_scalar_like, node_rewriter

register_patterns("canonicalize", [
    ("exp_of_log", ("exp", ("log", "x")), lambda x: x),            # exp(log(x)) -> x
    ("log_of_exp", ("log", ("exp", "x")), lambda x: x),            # log(exp(x)) -> x
], tags=("algebra",))


# -- DimShuffle --------------------------------------------------------------------
@node_rewriter("canonicalize", DimShuffle, tags=("shape",))
def dimshuffle_merge(fgraph, node):
    """DimShuffle of a DimShuffle is one DimShuffle (x.T.T -> x); an identity
    DimShuffle is its input."""
    op, x = node.op, node.inputs[0]
    if op.new_order == tuple(range(op.input_ndim)):
        return [x]
    inner = x.owner
    if inner is None or not isinstance(inner.op, DimShuffle):
        return None
    order = tuple("x" if d == "x" else inner.op.new_order[d] for d in op.new_order)
    base = inner.inputs[0]
    if order == tuple(range(base.type.ndim)):
        return [base]
    return [DimShuffle(base.type.ndim, order)(base)]


@node_rewriter("canonicalize", Subtensor, tags=("shape",))
def subtensor_to_dimshuffle(fgraph, node):
    """x[:, None] (only full slices and None) -> DimShuffle{0,x}(x)."""
    x = node.inputs[0]
    pattern, d = [], 0
    for e in node.op.template:
        if e == ("none",):
            pattern.append("x")
        elif e == ("slice", False, False, False) and d < x.type.ndim:
            pattern.append(d)
            d += 1
        else:
            return None
    pattern += list(range(d, x.type.ndim))
    return [DimShuffle(x.type.ndim, pattern)(x)]


# -- Reshape -------------------------------------------------------------------------
def _shape_entries(shp):
    """The entries of a shape vector as variables or ints, when known."""
    if isinstance(shp, Constant):
        return [int(s) for s in shp.data]
    if shp.owner is not None and isinstance(shp.owner.op, MakeVector):
        return list(shp.owner.inputs)
    return None


def _is_shape_of(entry, x, d):
    if isinstance(entry, int):
        return x.type.shape[d] == entry
    c = const_data(entry)
    if c is not None:
        return x.type.shape[d] == int(c)
    return (entry.owner is not None and isinstance(entry.owner.op, ShapeI)
            and entry.owner.op.i == d and entry.owner.inputs[0] is x)


@node_rewriter("canonicalize", Reshape, tags=("shape",))
def useless_reshape(fgraph, node):
    """Reshape to the shape it already has -> x; Reshape of a Reshape -> one Reshape."""
    x, shp = node.inputs
    inner = x.owner
    if inner is not None and isinstance(inner.op, Reshape):
        out = node.outputs[0]
        return [node.op.make_node(inner.inputs[0], shp, out.type.shape).outputs[0]]
    if x.type.ndim != node.op.ndim:
        return None
    entries = _shape_entries(shp)
    if entries is None or len(entries) != x.type.ndim:
        return None
    if all(_is_shape_of(e, x, d) for d, e in enumerate(entries)):
        return [x]
    return None


@node_rewriter("canonicalize", Elemwise, tags=("shape",))
def elemwise_of_alloc(fgraph, node):
    """add(x, alloc(c, shape of x)) -> add(x, c): an Alloc feeding an elementwise
    op whose other operand already has the output's shape only broadcasts."""
    out = node.outputs[0]
    pattern = out.type.broadcastable
    for k, v in enumerate(node.inputs):
        a = v.owner
        if a is None or not isinstance(a.op, Alloc) or not is_scalar_like(a.inputs[0]):
            continue
        others = [w for j, w in enumerate(node.inputs) if j != k]
        if all(is_scalar_like(w) for w in others) and v.type.broadcastable == pattern:
            # op(alloc(c, dims), s) -> alloc(op(c, s), dims): the op runs once
            inputs = [a.inputs[0] if j == k else w for j, w in enumerate(node.inputs)]
            inputs = [dimshuffle(w, ()) if w.type.ndim else w for w in inputs]
            return [alloc(node.op(*inputs), *a.inputs[1:])]
        if not any(w.type.broadcastable == pattern and w.owner is not a for w in others):
            continue
        value = dimshuffle(cast(a.inputs[0], v.type.dtype), ("x",) * v.type.ndim) \
            if a.inputs[0].type.ndim != v.type.ndim else cast(a.inputs[0], v.type.dtype)
        inputs = list(node.inputs)
        inputs[k] = value
        return [node.op(*inputs)]
    return None


# -- casts -----------------------------------------------------------------------------
@node_rewriter("canonicalize", "cast", tags=("algebra",))
def useless_cast(fgraph, node):
    """cast(x, dtype of x) -> x; cast(cast(x, wider), t) -> cast(x, t)."""
    x = node.inputs[0]
    target = node.op.scalar_op.param
    if x.type.dtype == target:
        return [x]
    if is_op(x, "cast"):
        base = x.owner.inputs[0]
        if np.can_cast(base.type.dtype, x.type.dtype, "safe"):
            return [cast(base, target)]
    return None


# -- shapes ----------------------------------------------------------------------------
def _as_scalar_var(s):
    if isinstance(s, Variable):
        return cast(s, "int64") if s.type.dtype != "int64" else s
    return constant(int(s), dtype="int64")


def input_shapes(node):
    """Shape tuples (of scalar variables) of ``node``'s inputs."""
    from vmc.tensor.shape import shape_i
    return [tuple(shape_i(v, d) for d in range(v.type.ndim)) if hasattr(v.type, "ndim")
            else () for v in node.inputs]


@node_rewriter("canonicalize", ShapeI, tags=("shape",))
def shape_i_of_known(fgraph, node):
    """Shape_i of a static length -> constant; Shape_i of a node whose op
    knows its output shapes -> that expression of its inputs' shapes."""
    x, i = node.inputs[0], node.op.i
    if x.type.shape[i] is not None:
        return [constant(x.type.shape[i], dtype="int64")]
    owner = x.owner
    if owner is None:
        return None
    if isinstance(owner.op, ARange):
        # arange(0, n, 1) has n elements when n is a length (never negative)
        start, stop, step = owner.inputs
        if const_value(start) == 0 and const_value(step) == 1 and stop.owner is not None \
                and isinstance(stop.owner.op, ShapeI):
            return [stop]
    try:
        shapes = owner.op.infer_shape(owner, input_shapes(owner))
    except NotImplementedError:
        return None
    s = shapes[x.index][i]
    s = _as_scalar_var(s)
    if s.type.ndim != 0 or x in _new_variables(s, owner, fgraph):
        return None
    return [s]


def _new_variables(v, stop_node, fgraph):
    """The variables of the new shape expression ``v``, and the graph's
    variables it reads (whose own ancestors are not walked: a shape rule
    builds on its node's inputs and their shapes, which come before the
    node; walking the whole graph below each shape made the rewriting of an
    N-step gradient quadratic)."""
    known = fgraph.variables
    seen, stack = set(), [v]
    while stack:
        w = stack.pop()
        if w in seen:
            continue
        seen.add(w)
        if w.owner is not None and w.owner is not stop_node and w not in known:
            stack.extend(w.owner.inputs)
    return seen


@node_rewriter("canonicalize", Shape, tags=("shape",))
def shape_of_static(fgraph, node):
    """Shape(x) with every length static -> constant."""
    x = node.inputs[0]
    if None in x.type.shape:
        return None
    return [constant(np.array(x.type.shape, dtype="int64"))]


@node_rewriter("canonicalize", Subtensor, tags=("shape",))
def subtensor_of_shape(fgraph, node):
    """Shape(x)[i] with a constant i -> Shape_i(x)."""
    x = node.inputs[0]
    if node.op.template != (("int",),) or x.owner is None or not isinstance(x.owner.op, Shape):
        return None
    c = const_data(node.inputs[1])
    if c is None:
        return None
    base, c, n = x.owner.inputs[0], int(c), x.owner.inputs[0].type.ndim
    if not -n <= c < n:
        return None
    i = c % n
    return [ShapeI(i)(base)]


# -- sums ------------------------------------------------------------------------------
def _is_sum(node):
    return isinstance(node.op, CAReduce) and node.op.scalar_name == "add"


@node_rewriter("canonicalize", CAReduce, tags=("algebra", "reduce"))
def sum_of_sum(fgraph, node):
    """sum(sum(x, a1), a2) -> sum(x, a1 and a2)."""
    x = node.inputs[0]
    inner = x.owner
    if not _is_sum(node) or inner is None or not _is_sum(inner):
        return None
    if node.outputs[0].type.dtype != x.type.dtype or len(fgraph.clients[x]) != 1:
        return None
    kept = [d for d in range(inner.inputs[0].type.ndim) if d not in inner.op.axis]
    axes = tuple(sorted(set(inner.op.axis) | {kept[a] for a in node.op.axis}))
    return [CAReduce("add", axes)(inner.inputs[0])]


@node_rewriter("canonicalize", CAReduce, tags=("algebra", "reduce"))
def reduce_over_broadcast(fgraph, node):
    """Reducing over dims of static length 1 is dropping them: sum(x[None, :],
    axis=0) -> x."""
    x, out = node.inputs[0], node.outputs[0]
    ones = tuple(a for a in node.op.axis if x.type.shape[a] == 1)
    if not ones or out.type.dtype != x.type.dtype or node.op.scalar_name in ("and", "or"):
        return None
    x = DimShuffle(x.type.ndim, tuple(d for d in range(x.type.ndim) if d not in ones))(x)
    rest = tuple(a - sum(1 for o in ones if o < a) for a in node.op.axis if a not in ones)
    return [CAReduce(node.op.scalar_name, rest)(x) if rest else x]


@node_rewriter("canonicalize", CAReduce, tags=("algebra", "reduce"))
def sum_of_alloc(fgraph, node):
    """sum(alloc(c, dims), axes) -> alloc(c * prod(dims[axes]), other dims)."""
    x = node.inputs[0]
    if not _is_sum(node) or x.owner is None or not isinstance(x.owner.op, Alloc):
        return None
    value, dims = x.owner.inputs[0], x.owner.inputs[1:]
    if not is_scalar_like(value) or len(dims) != x.type.ndim:
        return None
    out = node.outputs[0]
    v = dimshuffle(value, ()) if value.type.ndim else value
    v = cast(v, out.type.dtype)
    for a in node.op.axis:
        v = v * cast(dims[a], out.type.dtype)
    rest = [d for k, d in enumerate(dims) if k not in node.op.axis]
    return [alloc(v, *rest) if rest else v]


@node_rewriter("canonicalize", CAReduce, tags=("algebra", "reduce"))
def sum_of_scaled(fgraph, node):
    """sum(c * x) -> c * sum(x) and sum(x / c) -> sum(x) / c for factors c
    that broadcast fully; sum(-x) -> -sum(x)."""
    x = node.inputs[0]
    out = node.outputs[0]
    if not _is_sum(node) or out.type.dtype != x.type.dtype or x.type.dtype[0] != "f":
        return None
    name = x.owner.op.scalar_op.name if x.owner and isinstance(x.owner.op, Elemwise) else None
    if name == "neg":
        return [E.neg(CAReduce("add", node.op.axis)(x.owner.inputs[0]))]
    if name not in ("mul", "true_div"):
        return None
    a, b = x.owner.inputs
    if name == "true_div":
        if not is_scalar_like(b):
            return None
        return [E.true_div(CAReduce("add", node.op.axis)(a), _to_ndim(b, out.type.ndim))]
    for scale, rest in ((a, b), (b, a)):
        if is_scalar_like(scale) and not is_scalar_like(rest):
            return [E.mul(_to_ndim(scale, out.type.ndim), CAReduce("add", node.op.axis)(rest))]
    return None


def _to_ndim(v, ndim):
    """A fully broadcastable ``v`` with ``ndim`` dims."""
    return dimshuffle(v, ("x",) * ndim)


# -- gradient-only ops ---------------------------------------------------------------
@node_rewriter("canonicalize", ViewOp, tags=("shape",))
def remove_gradient_only(fgraph, node):
    """grad_clip(x), zero_grad(x), ... -> x: they act only on the gradient,
    which is built before compiling."""
    return [node.inputs[0]]
