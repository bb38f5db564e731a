"""numpy/scipy thunks for split, repeat, nonzero, diagonals, stacked matmul and
the linear algebra ops."""
from __future__ import annotations

import numpy as np

from vmc.tensor.blas_ops import MatMul
from vmc.tensor.extra_ops import AllocDiag, ExtractDiag, Nonzero, Repeat, Split
from vmc.tensor.linalg import (Cholesky, Det, Eigh, EighGrad, MatrixInverse, Solve,
                               SolveTriangular)

from .broadcast import broadcast_shape, fixed_dims
from .registry import register


def _single_or_tuple(outs):
    # The VMs store one output as is and unpack several from a tuple.
    return outs[0] if len(outs) == 1 else tuple(outs)


@register(Split)
def split_thunk(node, destroyable):
    axis, n = node.op.axis, node.op.n_splits

    def thunk(x, splits):
        if len(splits) != n or (splits < 0).any() or splits.sum() != x.shape[axis]:
            raise ValueError(f"split: sizes {splits.tolist()} do not cut dim {axis} of "
                             f"shape {x.shape} into {n} pieces")
        return _single_or_tuple(np.split(x, np.cumsum(splits[:-1]), axis=axis))
    return thunk


@register(Repeat)
def repeat_thunk(node, destroyable):
    axis = node.op.axis
    return lambda x, repeats: np.repeat(x, repeats, axis=axis)


@register(Nonzero)
def nonzero_thunk(node, destroyable):
    return lambda x: _single_or_tuple([i.astype(np.int64, copy=False) for i in np.nonzero(x)])


@register(ExtractDiag)
def extract_diag_thunk(node, destroyable):
    op = node.op
    # np.diagonal returns a read-only view; the op promises a new array.
    return lambda x: np.diagonal(x, op.offset, op.axis1, op.axis2).copy()


@register(AllocDiag)
def alloc_diag_thunk(node, destroyable):
    k = node.op.offset
    return lambda v: np.diag(v, k)


@register(MatMul)
def matmul_thunk(node, destroyable):
    dtype = np.dtype(node.outputs[0].type.dtype)
    fixed = [fixed_dims(v.type.shape[:-2]) for v in node.inputs]

    def thunk(x, y):
        broadcast_shape("matmul", [x.shape[:-2], y.shape[:-2]], fixed,
                        what="batch dims of shapes")
        r = np.matmul(x, y)
        return r if r.dtype == dtype else r.astype(dtype)
    return thunk


# -- linear algebra ---------------------------------------------------------------------
def _as(dtype):
    """Convert an input to the dtype LAPACK computes in (ints, float16)."""
    return lambda a: a if a.dtype == dtype else a.astype(dtype)


@register(MatrixInverse)
def inv_thunk(node, destroyable):
    conv = _as(np.dtype(node.outputs[0].type.dtype))
    return lambda x: np.linalg.inv(conv(x))


@register(Solve)
def solve_thunk(node, destroyable):
    import scipy.linalg             # on first use: its import takes 0.4 s
    conv = _as(np.dtype(node.outputs[0].type.dtype))
    assume_a, lower = node.op.assume_a, node.op.lower
    return lambda a, b: scipy.linalg.solve(conv(a), conv(b), assume_a=assume_a, lower=lower)


@register(SolveTriangular)
def solve_triangular_thunk(node, destroyable):
    import scipy.linalg             # on first use: its import takes 0.4 s
    conv = _as(np.dtype(node.outputs[0].type.dtype))
    lower = node.op.lower
    return lambda a, b: scipy.linalg.solve_triangular(conv(a), conv(b), lower=lower)


@register(Cholesky)
def cholesky_thunk(node, destroyable):
    import scipy.linalg             # on first use: its import takes 0.4 s
    conv = _as(np.dtype(node.outputs[0].type.dtype))
    lower = node.op.lower
    return lambda x: scipy.linalg.cholesky(conv(x), lower=lower)


@register(Det)
def det_thunk(node, destroyable):
    conv = _as(np.dtype(node.outputs[0].type.dtype))
    return lambda x: np.asarray(np.linalg.det(conv(x)))


@register(Eigh)
def eigh_thunk(node, destroyable):
    conv = _as(np.dtype(node.outputs[0].type.dtype))
    uplo = node.op.UPLO
    return lambda x: tuple(np.linalg.eigh(conv(x), UPLO=uplo))


@register(EighGrad)
def eigh_grad_thunk(node, destroyable):
    lower = node.op.UPLO == "L"

    def thunk(x, w, v, gw, gv):
        # For a symmetric A = V diag(w) V^T (Giles 2008):
        #   dA = V (diag(dw) + F o (V^T dV)) V^T,  F_ij = 1 / (w_j - w_i), F_ii = 0.
        diff = w[np.newaxis, :] - w[:, np.newaxis]
        np.fill_diagonal(diff, np.inf)
        g = v @ (np.diag(gw) + (v.T @ gv) / diff) @ v.T
        # eigh reads one triangle: an entry there moves two entries of the
        # symmetric matrix, the other triangle moves nothing.
        if lower:
            return np.tril(g) + np.triu(g, 1).T
        return np.triu(g) + np.tril(g, -1).T
    return thunk
