"""Softmax, log-softmax, softmax cross-entropy and its gradient, argmax/argmin
on the device: the row kernels of ``kernels/rows.h`` (a work-group per row).
Rows are a matrix of any strides (a vector is one row, a reduction over the
first axis a transposed view); other ranks run on the CPU."""
from __future__ import annotations

import numpy as np

from vmc.tensor.math import Argmax, normalize_axis
from vmc.tensor.nnet import (CrossentropySoftmaxArgmax, CrossentropySoftmaxDx, LogSoftmax,
                             Softmax)

from .. import modules
from .._gpu import gpu_empty
from ..codegen import KERNEL_DIR
from ..placement import gpu_thunk
from .basic import device_of_node

LOCAL = 256
_SUFFIX = {"float32": "f32", "float64": "f64"}


def row_kernel(dev, kind, dtype):
    """The kernel ``vmc_{kind}_{f32|f64}`` of rows.h on ``dev``."""
    name = f"vmc_{kind}_{_SUFFIX[dtype]}"
    return modules.build(dev, (KERNEL_DIR / "rows.h").read_text(), {name: LOCAL})[name]


def groups(dev, rows):
    return max(1, min(rows, 8 * dev.keep.groups_hint))


def as_rows(x, axis):
    """``(R, K, element offset, row stride, column stride)`` of ``x`` (1-d or 2-d)
    seen as rows along ``axis`` (None: the flat array, copied if needed)."""
    item = x.dtype.itemsize
    if axis is None or x.ndim == 1:
        if x.ndim > 1 and not x.flags_c_contiguous:
            x = x.copy()
        n = int(np.prod(x.shape))
        return x, 1, n, 0, (x.strides[-1] // item if x.ndim == 1 else 1)
    if axis == 1:
        return x, x.shape[0], x.shape[1], x.strides[0] // item, x.strides[1] // item
    return x, x.shape[1], x.shape[0], x.strides[1] // item, x.strides[0] // item


def _float_rows(node):
    x = node.inputs[0]
    return x.type.dtype in _SUFFIX and x.type.ndim <= 2


@gpu_thunk(Softmax, LogSoftmax, supports=_float_rows)
def softmax_thunk(node, destroyable):
    dev = device_of_node(node)
    k = row_kernel(dev, "softmax", node.inputs[0].type.dtype)
    log = np.int64(isinstance(node.op, LogSoftmax))
    ndim = node.inputs[0].type.ndim
    (axis,) = normalize_axis(node.op.axis, ndim, "softmax")

    def thunk(x):
        x, R, K, sr, sc = as_rows(x, axis)
        y = gpu_empty(dev, (R, K), x.dtype)      # rows along the axis, C-contiguous
        k(groups(dev, R), np.int64(R), np.int64(K), x, np.int64(sr), np.int64(sc), y, log)
        if ndim == 1:
            return y.view((K,), (x.dtype.itemsize,))
        if axis == 0:                              # rows were columns: a transposed view
            return y.view((K, R), (x.dtype.itemsize, K * x.dtype.itemsize)).copy()
        return y
    return thunk


@gpu_thunk(Argmax, supports=_float_rows)
def argmax_thunk(node, destroyable):
    dev = device_of_node(node)
    k = row_kernel(dev, "argmax", node.inputs[0].type.dtype)
    want_min = np.int64(node.op.kind != "max")
    axis = node.op.axis

    def thunk(x):
        x, R, K, sr, sc = as_rows(x, axis)
        if K == 0:
            raise ValueError(f"arg{node.op.kind} of an empty sequence (shape {x.shape})")
        out = gpu_empty(dev, (R,), np.int64)
        k(groups(dev, R), np.int64(R), np.int64(K), x, np.int64(sr), np.int64(sc), out,
          want_min)
        return out.view((), ()) if axis is None or x.ndim == 1 else out
    return thunk


def _xent_ok(node):
    return node.outputs[0].type.dtype in _SUFFIX and node.inputs[-1].type.dtype == "int64"


@gpu_thunk(CrossentropySoftmaxArgmax, supports=_xent_ok)
def crossentropy_softmax_thunk(node, destroyable):
    dev = device_of_node(node)
    dtype = node.inputs[0].type.dtype
    k = row_kernel(dev, "xent", dtype)
    slot = np.int64(dev.error_slot("crossentropy_softmax: a target is outside [0, n_classes) "
                                   "(row {value} counting from 1)"))

    def thunk(x, y):
        CrossentropySoftmaxArgmax.check_shapes(x.shape, y.shape)
        R, K = x.shape
        item = x.dtype.itemsize
        nll, sm = gpu_empty(dev, (R,), dtype), gpu_empty(dev, (R, K), dtype)
        am = gpu_empty(dev, (R,), np.int64)
        k(groups(dev, R), np.int64(R), np.int64(K), x, np.int64(x.strides[0] // item),
          np.int64(x.strides[1] // item), y, np.int64(y.strides[0] // 8), nll, sm, am,
          dev.err_buf, slot)
        dev.err_pending = True
        return nll, sm, am
    return thunk


@gpu_thunk(CrossentropySoftmaxDx, supports=_xent_ok)
def crossentropy_softmax_dx_thunk(node, destroyable):
    dev = device_of_node(node)
    dtype = node.inputs[1].type.dtype
    k = row_kernel(dev, "xent_dx", dtype)
    inplace = 1 in destroyable
    slot = np.int64(dev.error_slot("crossentropy_softmax_dx: a target is outside "
                                   "[0, n_classes) (row {value} counting from 1)"))

    def thunk(g, sm, y):
        if sm.shape[0] != y.shape[0] or g.shape[0] not in (1, y.shape[0]):
            raise ValueError(f"crossentropy_softmax_dx: shapes {g.shape}, {sm.shape}, "
                             f"{y.shape} do not match")
        R, K = sm.shape
        item = sm.dtype.itemsize
        out = sm if inplace and sm.flags_c_contiguous else gpu_empty(dev, (R, K), dtype)
        sg = 0 if g.shape[0] == 1 else g.strides[0] // item
        k(max(1, min((R * K + LOCAL - 1) // LOCAL, dev.keep.groups_hint)), np.int64(R),
          np.int64(K), g, np.int64(sg), sm, np.int64(sm.strides[0] // item),
          np.int64(sm.strides[1] // item), y, np.int64(y.strides[0] // 8), out,
          dev.err_buf, slot)
        dev.err_pending = True
        return out
    return thunk
