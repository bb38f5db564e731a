"""Cumulative sums and products, sorting: ``cumsum cumprod sort argsort``
(NumPy semantics; ``axis=None`` works on the flattened array).

Sorting applies a permutation that depends on the values: its gradient is
the inverse permutation of the output gradient (``SortPermute``); the
permutation itself has no gradient (it is piecewise constant).
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Apply, Op
from vmc.graph.type import TensorType

from .basic import as_tensor_variable
from .math import normalize_axis

__all__ = ["cumsum", "cumprod", "sort", "argsort", "CumOp", "Sort", "ArgSort", "SortPermute"]


def _axis(axis, x, opname):
    if axis is None:
        return None
    (a,) = normalize_axis(axis, x.type.ndim, opname)
    return a


def _flat_type(x):
    n = None
    if all(s is not None for s in x.type.shape):
        n = int(np.prod(x.type.shape))
    return TensorType(x.type.dtype, (n,))


class CumOp(Op):
    """``np.cumsum`` (mode "add") or ``np.cumprod`` (mode "mul") along ``axis``."""
    __props__ = ("axis", "mode")

    def __init__(self, axis=None, mode="add"):
        if mode not in ("add", "mul"):
            raise ValueError(f"CumOp: mode must be 'add' or 'mul', got {mode!r}")
        self.axis, self.mode = axis, mode

    def make_node(self, x):
        x = as_tensor_variable(x)
        if self.axis is not None and not -x.type.ndim <= self.axis < x.type.ndim:
            raise ValueError(f"cum{self.mode}: axis {self.axis} is out of range for {x.type}")
        dtype = str(np.cumsum(np.zeros(1, x.type.dtype)).dtype)
        t = _flat_type(x) if self.axis is None else x.type
        return Apply(self, [x], [TensorType(dtype, t.shape).make_variable()])

    def infer_shape(self, node, shapes):
        if self.axis is None:
            n = 1
            for s in shapes[0]:
                n = n * s
            return [(n,)]
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        (x,), (out,), (g,) = inputs, outputs, grads
        axis = 0 if self.axis is None else self.axis
        if self.mode == "add":
            gx = _reverse(CumOp(axis, "add")(_reverse(g, axis)), axis)
        else:
            # d/dx_i of prod_{j<=k} x_j is out_k / x_i (Theano's rule; x without zeros)
            gx = _reverse(CumOp(axis, "add")(_reverse(g * out, axis)), axis) / \
                (x.flatten() if self.axis is None else x)
        return [gx.reshape(x.shape) if self.axis is None else gx]

    def pushforward(self, inputs, outputs, tangents):
        if self.mode == "add":
            return [self(tangents[0])]
        return NotImplemented


def _reverse(v, axis):
    idx = [slice(None)] * v.type.ndim
    idx[axis] = slice(None, None, -1)
    return v[tuple(idx)]


def cumsum(x, axis=None):
    return CumOp(axis, "add")(x)


def cumprod(x, axis=None):
    return CumOp(axis, "mul")(x)


class Sort(Op):
    """``np.sort`` along ``axis`` (None: the flattened array)."""
    __props__ = ("axis",)

    def __init__(self, axis=-1):
        self.axis = axis

    def make_node(self, x):
        x = as_tensor_variable(x)
        _axis(self.axis, x, "sort")
        t = _flat_type(x) if self.axis is None else x.type
        return Apply(self, [x], [t.make_variable()])

    def infer_shape(self, node, shapes):
        return CumOp.infer_shape(self, node, shapes)

    def pullback(self, inputs, outputs, grads):
        (x,), (g,) = inputs, grads
        return [SortPermute(self.axis, inverse=True)(x, g)]

    def pushforward(self, inputs, outputs, tangents):
        return [SortPermute(self.axis, inverse=False)(inputs[0], tangents[0])]


class ArgSort(Op):
    """``np.argsort`` along ``axis`` (int64 indices; a stable sort)."""
    __props__ = ("axis",)

    def __init__(self, axis=-1):
        self.axis = axis

    def make_node(self, x):
        x = as_tensor_variable(x)
        _axis(self.axis, x, "argsort")
        t = _flat_type(x) if self.axis is None else x.type
        return Apply(self, [x], [TensorType("int64", t.shape).make_variable()])

    def infer_shape(self, node, shapes):
        return CumOp.infer_shape(self, node, shapes)

    def pullback(self, inputs, outputs, grads):
        return [None]


class SortPermute(Op):
    """``v`` reordered as sorting ``x`` reorders it (``inverse``: the inverse
    reordering, which the sort's gradient needs); ``v`` has the sorted shape
    when ``inverse``, ``x``'s shape otherwise."""
    __props__ = ("axis", "inverse")

    def __init__(self, axis=-1, inverse=False):
        self.axis, self.inverse = axis, bool(inverse)

    def make_node(self, x, v):
        x, v = as_tensor_variable(x), as_tensor_variable(v)
        out = x.type if self.inverse else (_flat_type(x) if self.axis is None else x.type)
        return Apply(self, [x, v], [TensorType(v.type.dtype, out.shape).make_variable()])

    def infer_shape(self, node, shapes):
        if self.inverse:
            return [shapes[0]]
        return CumOp.infer_shape(self, node, shapes[:1])

    def pullback(self, inputs, outputs, grads):
        x, v = inputs
        return [x.zeros_like(), SortPermute(self.axis, not self.inverse)(x, grads[0])]

    def pushforward(self, inputs, outputs, tangents):
        t = tangents[1]
        return [None if t is None else self(inputs[0], t)]


def sort(a, axis=-1, kind=None, order=None):
    if order is not None:
        raise NotImplementedError("sort: order= (structured arrays) is not supported")
    return Sort(axis)(a)


def argsort(a, axis=-1, kind=None, order=None):
    if order is not None:
        raise NotImplementedError("argsort: order= (structured arrays) is not supported")
    return ArgSort(axis)(a)
