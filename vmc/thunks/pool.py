"""CPU thunks of 2-d pooling (``vmc/tensor/signal/pool.py``): in numpy here
(the py thunks: the reference, ``linker='py'`` and the fallback), and the C
thunks of ``vmc/thunks/_pool.pyx`` for float32 and float64 (a loop per window).

The input is laid into an extended array big enough for every window (the
padding and any windows hanging over the border filled with -inf for max, 0
otherwise); for each offset in the window, one strided view holds that
element of every window, and the pool is an elementwise max or sum over those
views. The gradients scatter back with one strided add per offset. Window
sizes for the averages are separable: the rows a window keeps times its
columns.
"""
from __future__ import annotations

import numpy as np

from vmc.tensor.signal.pool import (AveragePoolGrad, DownsampleFactorMaxGradGrad,
                                    MaxPoolGrad, Pool, pool_output_length)

from vmc.tensor.blas_ops import BLAS_DTYPES

from .registry import module_or_none, register


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


def _offsets(ext, op, geo):
    """``(i, j, view)`` for each offset in the window: ``view[..., r, c]`` is the
    element at (i, j) of window (r, c). Reducing over these views one
    elementwise op at a time is several times faster than numpy's reduction
    over a strided view of all windows (184 against about 30 ms for LeNet's
    first 64x20x24x24 max pool)."""
    (sh, sw), (wh, ww) = op.stride, op.ws
    for i in range(wh):
        for j in range(ww):
            yield i, j, ext[..., i:i + sh * (geo.oh - 1) + 1:sh, j:j + sw * (geo.ow - 1) + 1:sw]


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


def _crop(ext, op, geo):
    return np.ascontiguousarray(ext[..., op.pad[0]:op.pad[0] + geo.h,
                                    op.pad[1]:op.pad[1] + geo.w])


def pool_forward(op, x):
    geo = _Geometry(op, x.shape)
    is_max = op.mode == "max"
    ext = _extend(x, op, geo, _low(x.dtype) if is_max else 0)
    out = None
    for _, _, v in _offsets(ext, op, geo):
        if out is None:
            out = v.copy()
        elif is_max:
            np.maximum(out, v, out=out)
        else:
            out += v
    if op.mode not in ("max", "sum"):
        out /= _counts(op, geo, x.dtype)
    return out


def max_pool_grad(op, x, out, gz):
    """Each window's gradient to every element equal to its maximum."""
    geo = _Geometry(op, x.shape)
    ext = _extend(x, op, geo, _low(x.dtype))
    gext = np.zeros(ext.shape, gz.dtype)
    for (_, _, v), (_, _, target) in zip(_offsets(ext, op, geo), _offsets(gext, op, geo)):
        target += np.where(v == out, gz, 0)
    return _crop(gext, op, geo)


def average_pool_grad(op, x, gz):
    geo = _Geometry(op, x.shape)
    if op.mode != "sum":
        gz = gz / _counts(op, geo, gz.dtype)
    gext = np.zeros(x.shape[:-2] + (geo.eh, geo.ew), gz.dtype)
    for _, _, target in _offsets(gext, op, geo):
        target += gz
    return _crop(gext, op, geo)


def max_pool_grad_grad(op, x, out, g):
    """Each window's sum of ``g`` over the elements equal to its maximum."""
    geo = _Geometry(op, x.shape)
    ext = _extend(x, op, geo, _low(x.dtype))
    gext = _extend(g, op, geo, 0)
    result = np.zeros(out.shape, g.dtype)
    for (_, _, v), (_, _, gv) in zip(_offsets(ext, op, geo), _offsets(gext, op, geo)):
        result += np.where(v == out, gv, 0)
    return result


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


def _pool_c_factory(kind):
    """A c factory through ``vmc.thunks._pool`` for float32/float64 nodes; None
    elsewhere (integers: the numpy thunk runs them)."""
    def factory(node, destroyable):
        dtype = node.outputs[0].type.dtype
        if dtype not in BLAS_DTYPES or any(v.type.dtype != dtype for v in node.inputs):
            return None
        mod = module_or_none("vmc.thunks._pool")
        return None if mod is None else mod.pool_thunk(node.op, kind, dtype)
    return factory


register(Pool, kind="c")(_pool_c_factory("pool"))
register(MaxPoolGrad, kind="c")(_pool_c_factory("max_grad"))
register(AveragePoolGrad, kind="c")(_pool_c_factory("average_grad"))
register(DownsampleFactorMaxGradGrad, kind="c")(_pool_c_factory("max_grad_grad"))
