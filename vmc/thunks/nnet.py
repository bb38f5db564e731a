"""Softmax and the softmax cross-entropy ops on the CPU: numpy thunks for the
cross-entropy ops (softmax's are in ``numpy_thunks``), and c thunks through
``vmc.thunks._nnet`` for float32/float64."""
from __future__ import annotations

import numpy as np

from vmc.tensor.blas_ops import BLAS_DTYPES
from vmc.tensor.math import normalize_axis
from vmc.tensor.nnet import (CrossentropySoftmaxArgmax, CrossentropySoftmaxDx, LogSoftmax,
                             Softmax)

from .registry import module_or_none, register


def _check_targets(op, y, k, x_shape):
    """Targets must index a class: numpy would wrap a negative one silently."""
    if y.size and (y.min() < 0 or y.max() >= k):
        i = int(np.flatnonzero((y < 0) | (y >= k))[0])
        raise ValueError(f"{op}: target {y[i]} of row {i} is outside [0, {k}) (logits of "
                         f"shape {x_shape})")


@register(CrossentropySoftmaxArgmax)
def crossentropy_softmax_thunk(node, destroyable):
    def thunk(x, y):
        CrossentropySoftmaxArgmax.check_shapes(x.shape, y.shape)
        _check_targets("crossentropy_softmax", y, x.shape[1], x.shape)
        am = np.argmax(x, axis=1)
        m = x[np.arange(x.shape[0]), am][:, None]
        e = np.exp(x - m)
        s = e.sum(axis=1, keepdims=True)
        e /= s
        nll = np.log(s[:, 0]) + m[:, 0] - x[np.arange(x.shape[0]), y]
        return nll.astype(x.dtype, copy=False), e, am.astype(np.int64, copy=False)
    return thunk


@register(CrossentropySoftmaxDx)
def crossentropy_softmax_dx_thunk(node, destroyable):
    inplace = 1 in destroyable

    def thunk(g, sm, y):
        if sm.shape[0] != y.shape[0] or g.shape[0] not in (1, y.shape[0]):
            raise ValueError(f"crossentropy_softmax_dx: shapes {g.shape}, {sm.shape}, "
                             f"{y.shape} do not match")
        _check_targets("crossentropy_softmax_dx", y, sm.shape[1], sm.shape)
        out = sm if inplace and sm.flags.writeable else sm.copy()
        out *= g[:, None]
        out[np.arange(sm.shape[0]), y] -= g
        return out
    return thunk


def _nnet_c_factory(make, dtype_input=0):
    """A c factory through ``vmc.thunks._nnet``: ``make(module, node, dtype,
    destroyable)`` for float32/float64 (the dtype of input ``dtype_input``)."""
    def factory(node, destroyable):
        dtype = node.inputs[dtype_input].type.dtype
        if dtype not in BLAS_DTYPES:
            return None
        mod = module_or_none("vmc.thunks._nnet")
        return None if mod is None else make(mod, node, dtype, destroyable)
    return factory


def _softmax_c(mod, node, dtype, destroyable):
    """Over the last axis of a vector or matrix only."""
    ndim = node.inputs[0].type.ndim
    if ndim > 2 or normalize_axis(node.op.axis, ndim, "softmax") != (ndim - 1,):
        return None
    make = mod.log_softmax_thunk if isinstance(node.op, LogSoftmax) else mod.softmax_thunk
    return make(dtype, 0 in destroyable)


register(Softmax, LogSoftmax, kind="c")(_nnet_c_factory(_softmax_c))
register(CrossentropySoftmaxArgmax, kind="c")(_nnet_c_factory(
    lambda mod, node, dtype, d: mod.crossentropy_softmax_thunk(dtype)))
register(CrossentropySoftmaxDx, kind="c")(_nnet_c_factory(
    lambda mod, node, dtype, d: mod.crossentropy_softmax_dx_thunk(dtype, 1 in d), 1))
