"""numpy thunks of cumsum/cumprod and sorting (``vmc/tensor/ordering.py``)."""
from __future__ import annotations

import numpy as np

from vmc.tensor.ordering import ArgSort, CumOp, Sort, SortPermute

from .registry import register


@register(CumOp)
def cum_thunk(node, destroyable):
    fn = np.cumsum if node.op.mode == "add" else np.cumprod
    axis, dtype = node.op.axis, np.dtype(node.outputs[0].type.dtype)
    return lambda x: fn(x, axis=axis, dtype=dtype)


@register(Sort)
def sort_thunk(node, destroyable):
    axis = node.op.axis
    return lambda x: np.sort(x, axis=axis, kind="stable")


@register(ArgSort)
def argsort_thunk(node, destroyable):
    axis = node.op.axis
    return lambda x: np.argsort(x, axis=axis, kind="stable").astype(np.int64, copy=False)


@register(SortPermute)
def sort_permute_thunk(node, destroyable):
    axis, inverse = node.op.axis, node.op.inverse

    def thunk(x, v):
        shape = x.shape
        if axis is None:
            x = x.reshape(-1)
        ax = 0 if axis is None else axis
        order = np.argsort(x, axis=ax, kind="stable")
        if not inverse:                    # v as x's sort reorders x
            return np.take_along_axis(v.reshape(-1) if axis is None else v, order, axis=ax)
        out = np.empty(x.shape, v.dtype)   # v put back where the sort took its entries
        np.put_along_axis(out, order, v, axis=ax)
        return out.reshape(shape)
    return thunk
