"""Ops that create arrays from shapes: arange, eye."""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Apply, Op
from vmc.graph.type import TensorType

from .basic import as_tensor_variable
from .elemwise import cast
from .shape import _static_int


class ARange(Op):
    """``np.arange(start, stop, step)`` of ``dtype``."""
    __props__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def make_node(self, start, stop, step):
        start, stop, step = (as_tensor_variable(v) for v in (start, stop, step))
        for name, v in (("start", start), ("stop", stop), ("step", step)):
            if v.type.ndim != 0:
                raise TypeError(f"arange: {name} must be a scalar, got {v.type}")
        vals = [_static_int(v) for v in (start, stop, step)]
        n = None
        if None not in vals and vals[2] != 0:
            n = len(range(*vals))
        return Apply(self, [start, stop, step], [TensorType(self.dtype, (n,)).make_variable()])

    def infer_shape(self, node, shapes):
        from .elemwise import ceil, maximum
        start, stop, step = node.inputs
        return [(cast(maximum(ceil((stop - start) / step), 0), "int64"),)]

    def pullback(self, inputs, outputs, grads):
        return [None, None, None]


def arange(start, stop=None, step=1, dtype=None):
    if stop is None:
        start, stop = 0, start
    start, stop, step = (as_tensor_variable(v) for v in (start, stop, step))
    if dtype is None:
        dtype = np.result_type(*[v.type.dtype for v in (start, stop, step)]).name
        if dtype == "bool":
            dtype = "int64"
    return ARange(dtype)(start, stop, step)


class Eye(Op):
    """``np.eye(n, m, k)`` of ``dtype``."""
    __props__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def make_node(self, n, m, k):
        n, m, k = (cast(as_tensor_variable(v), "int64") for v in (n, m, k))
        shape = (_static_int(n), _static_int(m))
        return Apply(self, [n, m, k], [TensorType(self.dtype, shape).make_variable()])

    def infer_shape(self, node, shapes):
        return [(node.inputs[0], node.inputs[1])]

    def pullback(self, inputs, outputs, grads):
        return [None, None, None]


def eye(n, m=None, k=0, dtype=None):
    from vmc.config import config
    return Eye(dtype or config.floatX)(n, n if m is None else m, k)


def identity_like(x, dtype=None):
    """An identity matrix (``eye``) of ``x``'s shape and dtype; ``x`` a matrix."""
    from .shape import shape_i
    x = as_tensor_variable(x)
    if x.type.ndim != 2:
        raise TypeError(f"identity_like: expected a matrix, got {x.type}")
    return eye(shape_i(x, 0), shape_i(x, 1), 0, dtype=dtype or x.type.dtype)
