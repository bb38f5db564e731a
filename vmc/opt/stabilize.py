"""stabilize: expressions that overflow or lose precision become ones that do not.

It runs on the final graph, gradients included (with the canonicalize rewrites,
so a gradient's ``p * (A / p - s)`` cancels into ``A - p * s``).
"""
from __future__ import annotations

import numpy as np

from vmc.tensor import elemwise as E
from vmc.tensor.creation import ARange
from vmc.tensor.elemwise import DimShuffle, Elemwise, const_data, const_value
from vmc.tensor.math import Argmax, CAReduce, logsumexp
from vmc.tensor.nnet import (CrossentropySoftmaxArgmax, CrossentropySoftmaxDx, LogSoftmax,
                             Softmax)
from vmc.tensor.shape import Alloc, ShapeI
from vmc.tensor.subtensor import IncSubtensor, Subtensor

from .chains import _MINUS_ONE, ADD_OPS, MUL_OPS, _is_chain_root, build, flatten, mul_plan
from .patterns import register_patterns
from .rewriting import node_rewriter, scalar_name

neg_softplus = lambda x: E.neg(E.softplus(x))  # noqa: E731

register_patterns("stabilize", [
    ("log1p_of_exp", ("log1p", ("exp", "x")), E.softplus),         # log1p(exp(x)) -> softplus(x)
    ("softplus", ("log", ("add", 1, ("exp", "x"))), E.softplus),   # log(1 + exp(x)) -> softplus(x)
    ("log_sigmoid", ("log", ("sigmoid", "x")),
     lambda x: neg_softplus(E.neg(x))),                           # log(sigmoid(x)) -> -softplus(-x)
    ("log1m_sigmoid", ("log", ("sub", 1, ("sigmoid", "x"))),
     neg_softplus),                                               # log(1 - sigmoid(x)) -> -softplus(x)
    ("log1p_neg_sigmoid", ("log1p", ("neg", ("sigmoid", "x"))),
     neg_softplus),                                               # log1p(-sigmoid(x)) -> -softplus(x)
    ("log1p", ("log", ("add", 1, "x")), E.log1p),                  # log(1 + x) -> log1p(x)
    ("log1m", ("log", ("sub", 1, "x")), lambda x: E.log1p(E.neg(x))),  # log(1 - x) -> log1p(-x)
    ("expm1", ("sub", ("exp", "x"), 1), E.expm1),                  # exp(x) - 1 -> expm1(x)
    ("expm1_add", ("add", ("exp", "x"), -1), E.expm1),             # exp(x) + -1 -> expm1(x)
], tags=("stability",))


# -- softmax ----------------------------------------------------------------------
def _softmax_input(var):
    """``(x, axis)`` when ``var`` is ``softmax(x)``, the softmax output of a
    fused cross-entropy, or ``exp(log_softmax(x))`` (what the gradient of a
    log-softmax reads), else None."""
    node = var.owner
    if node is None:
        return None
    if isinstance(node.op, Softmax):
        return node.inputs[0], node.op.axis % var.type.ndim
    if isinstance(node.op, CrossentropySoftmaxArgmax) and var.index == 1:
        return node.inputs[0], 1
    if scalar_name(var) == "exp":
        lsm = node.inputs[0].owner
        if lsm is not None and isinstance(lsm.op, LogSoftmax):
            return lsm.inputs[0], lsm.op.axis % var.type.ndim
    return None


@node_rewriter("stabilize", "log", tags=("stability", "softmax"))
def log_softmax(fgraph, node):
    """log(softmax(x)) -> log_softmax(x); log(softmax(x)[idx]) -> log_softmax(x)[idx]."""
    (v,) = node.inputs
    sm = _softmax_input(v)
    if sm is not None:
        return [LogSoftmax(sm[1])(sm[0])]
    sub = v.owner
    if sub is not None and isinstance(sub.op, Subtensor):
        sm = _softmax_input(sub.inputs[0])
        if sm is not None:
            return [sub.op(LogSoftmax(sm[1])(sm[0]), *sub.inputs[1:])]
    return None


@node_rewriter("stabilize", "log", tags=("stability",))
def log_sum_exp(fgraph, node):
    """log(sum(exp(x), axes)) -> logsumexp(x, axes), shifted by the max."""
    v = node.inputs[0]
    ds = None
    if v.owner is not None and isinstance(v.owner.op, DimShuffle):
        ds, v = v.owner.op, v.owner.inputs[0]
    red = v.owner
    if red is None or not isinstance(red.op, CAReduce) or red.op.scalar_name != "add":
        return None
    e = red.inputs[0]
    if scalar_name(e) != "exp" or red.outputs[0].type.dtype != e.type.dtype:
        return None
    if _shifted_by_max(e.owner.inputs[0]):
        return None                                     # already the stable form
    out = logsumexp(e.owner.inputs[0], axis=red.op.axis)
    return [ds(out) if ds is not None else out]


def _shifted_by_max(v):
    """True when ``v`` is already shifted by a max (what logsumexp builds, in
    whatever form canonicalize left it: ``x - m`` or ``-(y + m)``): a short
    walk up from ``v`` meets a max reduction."""
    stack, seen = [v], 0
    while stack and seen < 32:
        w = stack.pop()
        seen += 1
        node = w.owner
        if node is None:
            continue
        if isinstance(node.op, CAReduce) and node.op.scalar_name == "maximum":
            return True
        if isinstance(node.op, (Elemwise, DimShuffle)):
            stack.extend(node.inputs)
    return False


@node_rewriter("stabilize", "true_div", tags=("stability", "softmax"))
def softmax_from_exp(fgraph, node):
    """exp(x) / sum(exp(x), axis, keepdims) -> softmax(x, axis)."""
    num, den = node.inputs
    if scalar_name(num) != "exp" or den.owner is None or not isinstance(den.owner.op,
                                                                         DimShuffle):
        return None
    red = den.owner.inputs[0].owner
    if red is None or not isinstance(red.op, CAReduce) or red.op.scalar_name != "add":
        return None
    if red.inputs[0] is not num or len(red.op.axis) != 1:
        return None
    (axis,) = red.op.axis
    ndim = num.type.ndim
    keep = tuple("x" if d == axis else d - (d > axis) for d in range(ndim))
    if den.owner.op.new_order != keep:
        return None
    return [Softmax(axis)(num.owner.inputs[0])]


# -- distributing a product over a sum when it cancels a divisor --------------------
@node_rewriter("stabilize", "mul", tags=("stability",))
def distribute_cancel(fgraph, node):
    """x * (y / x - z) -> y - x * z, and in general a product over a sum whose
    terms divide by one of the product's factors: the division cancels instead
    of producing 0/0 where x underflows (the softmax and sigmoid gradients)."""
    out = node.outputs[0]
    if out.type.dtype[0] != "f":
        return None
    # A mul read only by a mul is inside that product, which sees all its
    # factors and more: flattening here too would make a long product quadratic.
    if not _is_chain_root(fgraph, node, ("mul",)):
        return None
    leaves = flatten(fgraph, out, MUL_OPS, "true_div")
    if not leaves:
        return None
    # a set: a list of the other factors per sum made a long product quadratic
    factors = {v for v, pos in leaves if pos and v is not _MINUS_ONE}
    for k, (s, pos) in enumerate(leaves):
        if not pos or s is _MINUS_ONE or scalar_name(s) not in ("add", "sub"):
            continue
        terms = flatten(fgraph, s, ADD_OPS, "sub")
        if not terms or not any(_divides_by(fgraph, t, factors, s) for t, _ in terms):
            continue
        rest = leaves[:k] + leaves[k + 1:]
        signed = []
        for t, tpos in terms:
            t_leaves = (flatten(fgraph, t, MUL_OPS, "true_div")
                        if scalar_name(t) in ("mul", "true_div") else None) or [(t, True)]
            plan = mul_plan(t_leaves + rest, out)
            if plan is None or plan == "keep":
                return None
            signed.append((build(plan), tpos))
        result = None
        for prod, tpos in signed:
            if result is None:
                result = prod if tpos else E.neg(prod)
            else:
                result = E.add(result, prod) if tpos else E.sub(result, prod)
        return [result]
    return None


def _divides_by(fgraph, term, factors, exclude):
    """Whether ``term`` divides by one of ``factors`` other than ``exclude``."""
    if scalar_name(term) != "true_div":
        return False
    leaves = flatten(fgraph, term, MUL_OPS, "true_div") or []
    return any(not pos and v is not exclude and v in factors for v, pos in leaves)


# -- softmax + cross-entropy as one op -----------------------------------------------------
def _is_row_arange(v, x, y):
    """``arange(n)`` with n the number of rows of ``x`` or the length of ``y``."""
    c = const_data(v)
    if c is not None:                       # arange(n) folded into a constant
        n = len(c)
        return c.ndim == 1 and np.array_equal(c, np.arange(n)) and \
            n in (x.type.shape[0], y.type.shape[0])
    node = v.owner
    if node is None or not isinstance(node.op, ARange):
        return False
    start, stop, step = node.inputs
    if const_value(start) != 0 or const_value(step) != 1:
        return False
    n = const_value(stop)
    if n is not None:
        return n in (x.type.shape[0], y.type.shape[0])
    s = stop.owner
    return (s is not None and isinstance(s.op, ShapeI) and s.op.i == 0
            and s.inputs[0] in (x, y))


def _nll_parts(sub_node):
    """``(x, y)`` when ``sub_node`` is ``log_softmax(x)[arange(n), y]``."""
    if not isinstance(sub_node.op, Subtensor) or sub_node.op.template != (("array",),) * 2:
        return None
    lsm, rows, y = sub_node.inputs
    if lsm.owner is None or not isinstance(lsm.owner.op, LogSoftmax):
        return None
    x = lsm.owner.inputs[0]
    if x.type.ndim != 2 or lsm.owner.op.axis % 2 != 1 or y.type.ndim != 1:
        return None
    if not y.type.dtype.startswith(("int", "uint")) or not _is_row_arange(rows, x, y):
        return None
    return x, y


@node_rewriter("stabilize", Subtensor, tags=("stability", "softmax", "crossentropy"))
def crossentropy_softmax(fgraph, node):
    """log_softmax(x)[arange(n), y] -> -CrossentropySoftmaxArgmax(x, y).nll; the
    softmax(x) and argmax(x, axis=1) other nodes compute become the op's
    softmax and argmax outputs."""
    parts = _nll_parts(node)
    if parts is None:
        return None
    x, y = parts
    nll, sm, am = CrossentropySoftmaxArgmax()(x, y)
    result = {node.outputs[0]: E.neg(nll)}
    for client, _ in fgraph.clients.get(x, ()):
        if client == "output":
            continue
        if isinstance(client.op, Softmax) and client.op.axis % 2 == 1:
            result[client.outputs[0]] = sm
        elif isinstance(client.op, Argmax) and client.op.kind == "max" and client.op.axis == 1:
            result[client.outputs[0]] = am
    return result


def _onehot_inc(a, sm_x):
    """``g`` when ``a`` is ``inc_subtensor(zeros[arange(n), y], g)`` for the
    cross-entropy's targets; with ``y``."""
    node = a.owner
    if node is None or not isinstance(node.op, IncSubtensor) or node.op.set:
        return None
    if node.op.template != (("array",),) * 2:
        return None
    zeros, g, rows, y = node.inputs
    z = zeros.owner
    if z is None or not isinstance(z.op, Alloc) or const_value(z.inputs[0]) != 0:
        return None
    if g.type.ndim != 1 or y.type.ndim != 1 or not _is_row_arange(rows, sm_x, y):
        return None
    return g, y


@node_rewriter("stabilize", CrossentropySoftmaxDx, tags=("crossentropy",))
def crossentropy_dx_of_alloc(fgraph, node):
    """Dx(alloc(g, n), sm, y) -> Dx(g, sm, y): the op broadcasts a length-1
    gradient itself (a mean's gradient is one number for every row)."""
    g, sm, y = node.inputs
    a = g.owner
    if a is None or not isinstance(a.op, Alloc) or a.inputs[0].type.shape not in ((), (1,)):
        return None
    value = a.inputs[0]
    return [CrossentropySoftmaxDx()(E.dimshuffle(value, ("x",)) if not value.type.ndim
                                    else value, sm, y)]


@node_rewriter("stabilize", "sub", tags=("stability", "softmax", "crossentropy"))
def crossentropy_softmax_grad(fgraph, node):
    """onehot(y) * g - softmax(x) * sum(onehot(y) * g, axis=1) (the gradient of
    the cross-entropy through softmax) -> CrossentropySoftmaxDx(-g, sm, y)."""
    a, b = node.inputs
    if scalar_name(b) != "mul" or a.type.ndim != 2:
        return None
    for sm, s in (b.owner.inputs, b.owner.inputs[::-1]):
        smx = _softmax_input(sm)
        if smx is None or smx[1] != 1:
            continue
        if s.owner is None or not isinstance(s.owner.op, DimShuffle) or \
                s.owner.op.new_order != (0, "x"):
            continue
        red = s.owner.inputs[0].owner
        if red is None or not isinstance(red.op, CAReduce) or red.op.scalar_name != "add" \
                or red.op.axis != (1,) or red.inputs[0] is not a:
            continue
        found = _onehot_inc(a, smx[0])
        if found is None:
            continue
        g, y = found
        if scalar_name(sm) == "exp":        # exp(log_softmax(x)): the op's own softmax
            sm = CrossentropySoftmaxArgmax()(smx[0], y)[1]
        return [CrossentropySoftmaxDx()(E.neg(g), sm, y)]
    return None


@node_rewriter("stabilize", Argmax, tags=("softmax", "crossentropy"))
def argmax_of_logits(fgraph, node):
    """argmax(softmax(x)) and argmax(log_softmax(x)) along their axis ->
    argmax(x), as both increase along it; argmax(x, axis=1) -> the argmax a
    cross-entropy of ``x`` computes anyway (an accuracy next to a loss)."""
    op, (v,) = node.op, node.inputs
    if op.kind != "max" or op.axis is None:
        return None
    src = v.owner
    logits = _softmax_input(v)
    if logits is None and src is not None and isinstance(src.op, LogSoftmax):
        logits = src.inputs[0], src.op.axis % v.type.ndim
    if logits is not None and logits[1] == op.axis:
        if isinstance(src.op, CrossentropySoftmaxArgmax):
            return [src.outputs[2]]
        return [Argmax("max", op.axis)(logits[0])]
    if v.type.ndim == 2 and op.axis == 1:
        for client, _ in fgraph.clients.get(v, ()):
            if client != "output" and isinstance(client.op, CrossentropySoftmaxArgmax) \
                    and client.inputs[0] is v:
                return [client.outputs[2]]
    return None

