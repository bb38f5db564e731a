"""CPU thunks of 2-d pooling (``vmc/tensor/signal/pool.py``), in numpy.

The input is laid into an extended array big enough for every window (the
padding and any windows hanging over the border filled with -inf for max, 0
otherwise), and one strided view gives all windows at once,
(..., oh, ow, wh, ww). The gradients scatter back with one strided add per
window offset. Window sizes for the averages are separable: the rows a
window keeps times its columns.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from vmc.tensor.signal.pool import (AveragePoolGrad, DownsampleFactorMaxGradGrad,
                                    MaxPoolGrad, Pool, pool_output_length)

from .registry import register


class _Geometry:
    __slots__ = ("h", "w", "oh", "ow", "eh", "ew")

    def __init__(self, op, shape):
        self.h, self.w = shape[-2:]
        self.oh, self.ow = (pool_output_length(n, ws, s, p, op.ignore_border) for n, ws, s, p
                            in zip((self.h, self.w), op.ws, op.stride, op.pad))
        # rows of the extended input: the padded input, or what the windows reach
        self.eh = max(self.h + 2 * op.pad[0], (self.oh - 1) * op.stride[0] + op.ws[0])
        self.ew = max(self.w + 2 * op.pad[1], (self.ow - 1) * op.stride[1] + op.ws[1])


def _extend(x, op, geo, fill):
    ext = np.full(x.shape[:-2] + (geo.eh, geo.ew), fill, dtype=x.dtype)
    ext[..., op.pad[0]:op.pad[0] + geo.h, op.pad[1]:op.pad[1] + geo.w] = x
    return ext


def _windows(ext, op, geo):
    st = ext.strides
    return as_strided(ext, ext.shape[:-2] + (geo.oh, geo.ow) + op.ws,
                      st[:-2] + (st[-2] * op.stride[0], st[-1] * op.stride[1]) + st[-2:],
                      writeable=False)


def _counts(op, geo, dtype):
    """How many elements each window averages over, (oh, ow)."""
    sizes = []
    for n, o, ws, s, p in zip((geo.h, geo.w), (geo.oh, geo.ow), op.ws, op.stride, op.pad):
        start = np.arange(o) * s
        end = np.minimum(start + ws, n + 2 * p)
        if op.mode == "average_exc_pad":
            start, end = np.maximum(start, p), np.minimum(end, n + p)
        sizes.append(end - start)
    return np.outer(sizes[0], sizes[1]).astype(dtype)


def _low(dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _scatter(contrib, op, geo, shape, dtype):
    """Sum window contributions (..., oh, ow, wh, ww) back to the input's shape."""
    ext = np.zeros(shape[:-2] + (geo.eh, geo.ew), dtype)
    (sh, sw), (wh, ww) = op.stride, op.ws
    for i in range(wh):
        for j in range(ww):
            ext[..., i:i + sh * (geo.oh - 1) + 1:sh, j:j + sw * (geo.ow - 1) + 1:sw] += \
                contrib[..., i, j]
    return np.ascontiguousarray(ext[..., op.pad[0]:op.pad[0] + geo.h,
                                    op.pad[1]:op.pad[1] + geo.w])


def pool_forward(op, x):
    geo = _Geometry(op, x.shape)
    if op.mode == "max":
        return _windows(_extend(x, op, geo, _low(x.dtype)), op, geo).max(axis=(-2, -1))
    out = _windows(_extend(x, op, geo, 0), op, geo).sum(axis=(-2, -1), dtype=x.dtype)
    if op.mode != "sum":
        out /= _counts(op, geo, x.dtype)
    return out


def _max_mask(op, x, out, geo):
    win = _windows(_extend(x, op, geo, _low(x.dtype)), op, geo)
    return win == out[..., None, None]


def max_pool_grad(op, x, out, gz):
    geo = _Geometry(op, x.shape)
    mask = _max_mask(op, x, out, geo)
    return _scatter(mask * gz[..., None, None], op, geo, x.shape, gz.dtype)


def average_pool_grad(op, x, gz):
    geo = _Geometry(op, x.shape)
    if op.mode != "sum":
        gz = gz / _counts(op, geo, gz.dtype)
    contrib = np.broadcast_to(gz[..., None, None], gz.shape + op.ws)
    return _scatter(contrib, op, geo, x.shape, gz.dtype)


def max_pool_grad_grad(op, x, out, g):
    geo = _Geometry(op, x.shape)
    mask = _max_mask(op, x, out, geo)
    win = _windows(_extend(g, op, geo, 0), op, geo)
    return (win * mask).sum(axis=(-2, -1), dtype=g.dtype)


def _shape_check(op, x, what, got, want):
    if got != want:
        raise ValueError(f"{op}: {what} has shape {got}, expected {want} for an input of "
                         f"shape {x.shape}")


@register(Pool)
def pool_thunk(node, destroyable):
    op = node.op
    return lambda x: pool_forward(op, x)


@register(MaxPoolGrad)
def max_pool_grad_thunk(node, destroyable):
    op = node.op

    def thunk(x, out, gz):
        _shape_check(op, x, "the output gradient", gz.shape, out.shape)
        return max_pool_grad(op, x, out, gz)
    return thunk


@register(AveragePoolGrad)
def average_pool_grad_thunk(node, destroyable):
    op = node.op
    return lambda x, gz: average_pool_grad(op, x, gz)


@register(DownsampleFactorMaxGradGrad)
def max_pool_grad_grad_thunk(node, destroyable):
    op = node.op

    def thunk(x, out, g):
        _shape_check(op, x, "g", g.shape, x.shape)
        return max_pool_grad_grad(op, x, out, g)
    return thunk
