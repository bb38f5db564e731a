"""CPU thunks of the 2-d convolutions (``vmc/tensor/nnet/abstract_conv.py``):
im2col and BLAS gemm in numpy (the py thunks: the reference, ``linker='py'``
and the fallback), and the C thunks of ``vmc/thunks/_conv.pyx`` for float32
and float64 (im2col/col2im loops and cython_blas, or direct kernels for the
few-channel shapes where those are faster).

The forward pass goes image by image (columns (C/groups * kh * kw, oh * ow)
per group, one gemm per image and group, written in place: ``conv_forward``).
The gradients lay the columns of the whole batch out as (groups,
C/groups * kh * kw, N * oh * ow): one gemm per group covers the batch. The
columns come from one strided view of the padded input, copied once
(``_im2col``); the input gradient scatters its columns back with one strided
add per kernel offset (``_col2im``).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from vmc.tensor.nnet.abstract_conv import (AbstractConv2d, AbstractConv2d_gradInputs,
                                           AbstractConv2d_gradWeights, border_pads)

from vmc.config import config
from vmc.tensor.blas_ops import BLAS_DTYPES

from .registry import module_or_none, register


class _Geometry:
    """Padding, output size and the column layout of one call."""
    __slots__ = ("n", "c", "h", "w", "f", "kh", "kw", "ph", "pw", "oh", "ow", "g")

    def __init__(self, op, img_shape, kern_shape):
        self.n, self.c, self.h, self.w = img_shape
        self.f, _, self.kh, self.kw = kern_shape
        (sh, sw), (dh, dw) = op.subsample, op.filter_dilation
        self.ph, self.pw = border_pads(op.border_mode, (self.kh, self.kw), (dh, dw))
        self.oh = (self.h + 2 * self.ph - (self.kh - 1) * dh - 1) // sh + 1
        self.ow = (self.w + 2 * self.pw - (self.kw - 1) * dw - 1) // sw + 1
        self.g = op.num_groups


def _check(op, img_shape, kern_shape):
    if img_shape[1] != kern_shape[1] * op.num_groups or kern_shape[0] % op.num_groups:
        raise ValueError(f"{op}: input of shape {img_shape} and filters of shape "
                         f"{kern_shape} do not fit {op.num_groups} group(s) (the input's "
                         f"channels must be the filters' dim 1 times the groups, and the "
                         f"filters' dim 0 a multiple of the groups)")
    geo = _Geometry(op, img_shape, kern_shape)
    if geo.oh < 1 or geo.ow < 1:
        raise ValueError(f"{op}: filters of shape {kern_shape} (dilation "
                         f"{op.filter_dilation}) do not fit the input of shape {img_shape} "
                         f"with padding {(geo.ph, geo.pw)}")
    return geo


def _pad(x, geo):
    if geo.ph == 0 and geo.pw == 0:
        return x
    out = np.zeros(x.shape[:2] + (geo.h + 2 * geo.ph, geo.w + 2 * geo.pw), x.dtype)
    out[:, :, geo.ph:geo.ph + geo.h, geo.pw:geo.pw + geo.w] = x
    return out


def _im2col(x, op, geo):
    """(G, C/G * kh * kw, N * oh * ow) columns of the padded input ``x``."""
    (sh, sw), (dh, dw) = op.subsample, op.filter_dilation
    s0, s1, s2, s3 = x.strides
    view = as_strided(x, (geo.c, geo.kh, geo.kw, geo.n, geo.oh, geo.ow),
                      (s1, s2 * dh, s3 * dw, s0, s2 * sh, s3 * sw), writeable=False)
    cols = np.ascontiguousarray(view)
    return cols.reshape(geo.g, (geo.c // geo.g) * geo.kh * geo.kw, geo.n * geo.oh * geo.ow)


def _col2im(cols, op, geo, dtype):
    """The adjoint of ``_im2col``: columns summed back into an unpadded input."""
    (sh, sw), (dh, dw) = op.subsample, op.filter_dilation
    cols = cols.reshape(geo.c, geo.kh, geo.kw, geo.n, geo.oh, geo.ow)
    out = np.zeros((geo.c, geo.n, geo.h + 2 * geo.ph, geo.w + 2 * geo.pw), dtype)
    for i in range(geo.kh):
        r = i * dh
        for j in range(geo.kw):
            c = j * dw
            out[:, :, r:r + sh * (geo.oh - 1) + 1:sh, c:c + sw * (geo.ow - 1) + 1:sw] += \
                cols[:, i, j]
    out = out[:, :, geo.ph:geo.ph + geo.h, geo.pw:geo.pw + geo.w]
    return np.ascontiguousarray(out.transpose(1, 0, 2, 3))


def _filters(kern, op):
    """The filters as cross-correlation weights (flipped for a true convolution)."""
    return kern[:, :, ::-1, ::-1] if op.filter_flip else kern


def _group_rows(a, geo):
    """(N, F, oh, ow) -> (G, F/G, N * oh * ow): the layout the gemm reads and writes."""
    a = a.reshape(geo.n, geo.g, geo.f // geo.g, geo.oh * geo.ow).transpose(1, 2, 0, 3)
    return np.ascontiguousarray(a).reshape(geo.g, geo.f // geo.g, -1)


def conv_forward(op, img, kern):
    """Image by image: one image's columns (a few MB) stay in cache for the gemm
    that reads them, and the gemm writes that image's (F, oh*ow) output in
    place. Measured on the bench's 32x32x64x64 * 64x3x3 (one thread, same
    process): 174 ms against 223 ms for the whole batch's columns first, and
    139 ms for the bare gemm."""
    geo = _check(op, img.shape, kern.shape)
    xp = _pad(img, geo)
    fg, k, p = geo.f // geo.g, (geo.c // geo.g) * geo.kh * geo.kw, geo.oh * geo.ow
    w = np.ascontiguousarray(_filters(kern, op)).reshape(geo.g, fg, k)
    (sh, sw), (dh, dw) = op.subsample, op.filter_dilation
    _, s1, s2, s3 = xp.strides
    shape = (geo.c, geo.kh, geo.kw, geo.oh, geo.ow)
    strides = (s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw)
    cols = np.empty(shape, img.dtype)
    out = np.empty((geo.n, geo.f, geo.oh, geo.ow), img.dtype)
    for n in range(geo.n):
        np.copyto(cols, as_strided(xp[n], shape, strides, writeable=False))
        np.matmul(w, cols.reshape(geo.g, k, p), out=out[n].reshape(geo.g, fg, p))
    return out


def conv_grad_inputs(op, kern, top, hw):
    n, f = top.shape[:2]
    geo = _check(op, (n, kern.shape[1] * op.num_groups, int(hw[0]), int(hw[1])), kern.shape)
    _check_top(op, geo, top)
    w = np.ascontiguousarray(_filters(kern, op)).reshape(geo.g, geo.f // geo.g, -1)
    cols = np.matmul(w.transpose(0, 2, 1), _group_rows(top, geo))    # (G, K, N*oh*ow)
    return _col2im(cols, op, geo, top.dtype)


def conv_grad_weights(op, img, top, hw):
    f = top.shape[1]
    kshape = (f, img.shape[1] // op.num_groups, int(hw[0]), int(hw[1]))
    geo = _check(op, img.shape, kshape)
    _check_top(op, geo, top)
    cols = _im2col(_pad(img, geo), op, geo)
    # the sum over images and positions of top x columns: one gemm per group
    gw = np.matmul(_group_rows(top, geo), cols.transpose(0, 2, 1)).reshape(kshape)
    return np.ascontiguousarray(_filters(gw, op))


def _check_top(op, geo, top):
    if top.shape != (geo.n, geo.f, geo.oh, geo.ow):
        raise ValueError(f"{op}: the output gradient has shape {top.shape}, expected "
                         f"{(geo.n, geo.f, geo.oh, geo.ow)}")


def _floats(dtype):
    dtype = np.dtype(dtype)
    return lambda a: a if a.dtype == dtype else a.astype(dtype)


@register(AbstractConv2d)
def conv2d_thunk(node, destroyable):
    op, conv = node.op, _floats(node.outputs[0].type.dtype)
    return lambda img, kern: conv_forward(op, conv(img), conv(kern))


@register(AbstractConv2d_gradInputs)
def conv2d_grad_inputs_thunk(node, destroyable):
    op, conv = node.op, _floats(node.outputs[0].type.dtype)
    return lambda kern, top, hw: conv_grad_inputs(op, conv(kern), conv(top), hw)


@register(AbstractConv2d_gradWeights)
def conv2d_grad_weights_thunk(node, destroyable):
    op, conv = node.op, _floats(node.outputs[0].type.dtype)
    return lambda img, top, hw: conv_grad_weights(op, conv(img), conv(top), hw)


_followed = []


def _conv_module():
    """``vmc.thunks._conv`` (None when not built), following config.threads (its
    choice between direct kernels and gemm depends on it)."""
    mod = module_or_none("vmc.thunks._conv")
    if mod is not None and not _followed:
        _followed.append(mod)
        config.watch("threads", mod.set_threads)
        mod.set_blas_wide(_blas_runs_avx512())
    return mod


# OpenBLAS's names of its kernel families with AVX-512 gemm
_AVX512_KERNELS = ("skylakex", "cooperlake", "sapphirerapids")


def _blas_runs_avx512():
    """Whether the BLAS that scipy's cython_blas calls runs AVX-512 kernels
    (threadpoolctl's ``architecture``; OPENBLAS_CORETYPE may pin older ones)."""
    try:
        from threadpoolctl import threadpool_info

        from .scipy_blas import preload
        preload()                   # scipy's BLAS loaded (without scipy.linalg)
        infos = threadpool_info()
    except Exception:       # noqa: BLE001  (no threadpoolctl answer: keep the rule)
        return False
    for info in infos:
        if info.get("user_api") == "blas" and "scipy.libs" in info.get("filepath", ""):
            return str(info.get("architecture", "")).lower() in _AVX512_KERNELS
    return False


def _conv_c_factory(kind):
    """A c factory through ``vmc.thunks._conv`` for float32/float64 nodes; None
    elsewhere (the numpy thunk runs them)."""
    def factory(node, destroyable):
        dtype = node.outputs[0].type.dtype
        if dtype not in BLAS_DTYPES:
            return None
        mod = _conv_module()
        return None if mod is None else mod.conv_thunk(node.op, kind, dtype)
    return factory


register(AbstractConv2d, kind="c")(_conv_c_factory("forward"))
register(AbstractConv2d_gradInputs, kind="c")(_conv_c_factory("grad_inputs"))
register(AbstractConv2d_gradWeights, kind="c")(_conv_c_factory("grad_weights"))
