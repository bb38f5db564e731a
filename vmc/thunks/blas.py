"""The BLAS update ops (Gemm, Gemv, Ger) and Dot on the CPU: numpy thunks, and
c thunks through ``vmc.thunks._blas`` (scipy's cython_blas) for float32/float64."""
from __future__ import annotations

import numpy as np

from vmc.tensor.blas_ops import BLAS_DTYPES, Gemm, Gemv, Ger
from vmc.tensor.math import Dot

from .registry import module_or_none, register


# -- BLAS ---------------------------------------------------------------------------
def _update(inplace, z, r, beta):
    """``beta * z + r`` (``r`` already scaled, a fresh array), into ``z`` when in place."""
    if beta == 0:
        return r
    if inplace and isinstance(z, np.ndarray) and z.flags.writeable and z.shape == r.shape:
        if beta != 1:
            z *= beta
        z += r
        return z
    if beta != 1:
        r += beta * z
    else:
        r += z
    return r


def _product_update_thunk(name, product):
    """``beta * z + alpha * (a @ b)`` with numpy, for Gemm and Gemv."""
    def factory(node, destroyable):
        inplace = 0 in destroyable

        def thunk(z, alpha, a, b, beta):
            r = np.dot(a, b)
            if r.shape != np.shape(z):
                raise ValueError(f"{name}: z has shape {np.shape(z)} but {product} has "
                                 f"{r.shape}")
            if alpha != 1:
                r *= alpha
            return _update(inplace, z, r, beta)
        return thunk
    return factory


register(Gemm)(_product_update_thunk("gemm", "x @ y"))
register(Gemv)(_product_update_thunk("gemv", "a @ x"))


@register(Ger)
def ger_thunk(node, destroyable):
    inplace = 0 in destroyable

    def thunk(a, alpha, x, y):
        r = np.multiply.outer(x * alpha, y)
        if r.shape != np.shape(a):
            raise ValueError(f"ger: a has shape {np.shape(a)} but outer(x, y) has {r.shape}")
        return _update(inplace, a, r, 1)
    return thunk


def _blas_c_factory(make):
    """A c factory through ``vmc.thunks._blas``: ``make(module, inplace)``, for
    float32/float64 operands of one dtype; None elsewhere (numpy runs them)."""
    def factory(node, destroyable):
        if any(v.type.dtype not in BLAS_DTYPES for v in node.inputs if v.type.ndim):
            return None
        if len({v.type.dtype for v in node.inputs}) != 1:
            return None
        mod = module_or_none("vmc.thunks._blas")
        return None if mod is None else make(mod, 0 in destroyable)
    return factory


register(Gemm, kind="c")(_blas_c_factory(lambda m, inplace: m.gemm_thunk(inplace)))
register(Gemv, kind="c")(_blas_c_factory(lambda m, inplace: m.gemv_thunk(inplace)))
register(Ger, kind="c")(_blas_c_factory(lambda m, inplace: m.ger_thunk(inplace)))
register(Dot, kind="c")(_blas_c_factory(lambda m, inplace: m.dot_thunk()))
