"""Products beyond vector/matrix ``dot``: ``matmul`` (stacked, broadcasting batch
dims), ``tensordot`` and ``batched_dot``; and the BLAS update ops the specialize
rewrites introduce (``Gemm``, ``Gemv``, ``Ger``: see below).

``tensordot`` and ``batched_dot`` are built from dimshuffle, reshape, ``dot``
and ``MatMul``, so they get their shape rules and gradients from those ops (as
in Theano).
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Apply, Op
from vmc.graph.type import TensorType

from .basic import as_tensor_variable
from .elemwise import _broadcast_shape, _unbroadcast, cast, dimshuffle
from .math import dot, outer
from .math import sum as tsum
from .shape import reshape, shape_tuple


def _swap_last(x):
    nd = x.type.ndim
    return dimshuffle(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


class MatMul(Op):
    """``np.matmul`` of two tensors of at least 2 dims: a matrix product over
    the last two dims, batch dims broadcast (only dims of static length 1
    broadcast, as in elementwise ops)."""
    __props__ = ()

    def make_node(self, x, y):
        x0, y0 = as_tensor_variable(x), as_tensor_variable(y)
        if x0.type.ndim < 2 or y0.type.ndim < 2:
            raise TypeError(f"MatMul: expected tensors of at least 2 dims, got {x0.type} "
                            f"and {y0.type}; vt.matmul handles vectors")
        kx, ky = x0.type.shape[-1], y0.type.shape[-2]
        if kx is not None and ky is not None and kx != ky:
            raise TypeError(f"matmul: inner dimensions differ: {x0.type} and {y0.type}")
        nd = max(x0.type.ndim, y0.type.ndim)
        x, y = (dimshuffle(v, ("x",) * (nd - v.type.ndim) + tuple(range(v.type.ndim)))
                for v in (x0, y0))
        # Broadcast the batch dims (the matrix dims masked out, so that the
        # error counts dims as the operands have them).
        bx = TensorType(x.type.dtype, x.type.shape[:-2] + (None, None))
        by = TensorType(y.type.dtype, y.type.shape[:-2] + (None, None))
        batch = _broadcast_shape([bx, by], "matmul (batch dims)", [x0.type, y0.type])[:-2]
        shape = batch + (x.type.shape[-2], y.type.shape[-1])
        dtype = np.result_type(x.type.dtype, y.type.dtype).name
        return Apply(self, [x, y], [TensorType(dtype, shape).make_variable()])

    def infer_shape(self, node, shapes):
        x, y = node.inputs
        batch = []
        for d in range(x.type.ndim - 2):
            cands = [s[d] for s, v in zip(shapes, (x, y)) if v.type.shape[d] != 1]
            batch.append(cands[0] if cands else 1)
        return [tuple(batch) + (shapes[0][-2], shapes[1][-1])]

    def pullback(self, inputs, outputs, grads):
        (x, y), (g,) = inputs, grads
        gx = MatMul()(g, _swap_last(y))
        gy = MatMul()(_swap_last(x), g)
        return [_unbroadcast(gx, x), _unbroadcast(gy, y)]


def matmul(x, y):
    """``np.matmul`` (the ``@`` operator): vectors and matrices go through
    ``dot``; a 1-d operand of a stacked product gets a dim added and removed."""
    x, y = as_tensor_variable(x), as_tensor_variable(y)
    if x.type.ndim == 0 or y.type.ndim == 0:
        raise TypeError(f"matmul: scalar operands are not allowed, got {x.type} and "
                        f"{y.type}; use * to scale")
    if x.type.ndim <= 2 and y.type.ndim <= 2:
        return dot(x, y)
    vx, vy = x.type.ndim == 1, y.type.ndim == 1
    if vx:
        x = dimshuffle(x, ("x", 0))
    if vy:
        y = dimshuffle(y, (0, "x"))
    out = MatMul()(x, y)
    nd = out.type.ndim
    drop = ([nd - 2] if vx else []) + ([nd - 1] if vy else [])
    if drop:
        out = dimshuffle(out, [d for d in range(nd) if d not in drop])
    return out


def _normalize_tensordot_axes(a, b, axes):
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > a.type.ndim or n > b.type.ndim:
            raise ValueError(f"tensordot: cannot contract {n} axes of {a.type} and {b.type}")
        return list(range(a.type.ndim - n, a.type.ndim)), list(range(n))
    if len(axes) != 2:
        raise ValueError(f"tensordot: axes must be an int or a pair of axis lists, got {axes}")
    ax, bx = axes
    ax = [ax] if isinstance(ax, (int, np.integer)) else list(ax)
    bx = [bx] if isinstance(bx, (int, np.integer)) else list(bx)
    if len(ax) != len(bx):
        raise ValueError(f"tensordot: {len(ax)} axes of {a.type} against {len(bx)} of {b.type}")
    ax = [int(d) % a.type.ndim if -a.type.ndim <= d < a.type.ndim else None for d in ax]
    bx = [int(d) % b.type.ndim if -b.type.ndim <= d < b.type.ndim else None for d in bx]
    if None in ax or None in bx or len(set(ax)) != len(ax) or len(set(bx)) != len(bx):
        raise ValueError(f"tensordot: invalid axes {axes} for {a.type} and {b.type}")
    return ax, bx


def _prod(items):
    """Product of static ints and scalar variables; an int when all are static."""
    out = 1
    for s in items:
        out = out * s
    return out


def tensordot(a, b, axes=2):
    """``np.tensordot``: sum products over ``axes`` (an int n: the last n of
    ``a`` with the first n of ``b``; or a pair of axis lists)."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    ax, bx = _normalize_tensordot_axes(a, b, axes)
    for i, j in zip(ax, bx):
        sa, sb = a.type.shape[i], b.type.shape[j]
        if sa is not None and sb is not None and sa != sb:
            raise TypeError(f"tensordot: axis {i} of {a.type} and axis {j} of {b.type} "
                            f"differ in length")
    a_free = [d for d in range(a.type.ndim) if d not in ax]
    b_free = [d for d in range(b.type.ndim) if d not in bx]
    sa, sb = _shape_items(a), _shape_items(b)
    # a as (free, summed) and b as (summed, free) matrices; one dot; reshape back.
    am = reshape(dimshuffle(a, a_free + ax), [_prod([sa[d] for d in a_free]),
                                              _prod([sa[d] for d in ax])])
    bm = reshape(dimshuffle(b, bx + b_free), [_prod([sb[d] for d in bx]),
                                              _prod([sb[d] for d in b_free])])
    out = dot(am, bm)
    return reshape(out, [sa[d] for d in a_free] + [sb[d] for d in b_free])


def _shape_items(x):
    """Each dim as a static int when known, else a symbolic scalar."""
    sym = shape_tuple(x)
    return [s if s is not None else v for s, v in zip(x.type.shape, sym)]


def batched_dot(a, b):
    """Per-batch products along dim 0: ``(B, n, m) x (B, m, p) -> (B, n, p)``,
    ``(B, n, m) x (B, m) -> (B, n)``, ``(B, m) x (B, m, p) -> (B, p)`` and
    ``(B, n) x (B, n) -> (B,)``."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    if a.type.ndim not in (2, 3) or b.type.ndim not in (2, 3):
        raise TypeError(f"batched_dot: expected 2-d or 3-d tensors, got {a.type} and "
                        f"{b.type}; use vt.matmul for more batch dims")
    va, vb = a.type.ndim == 2, b.type.ndim == 2
    if va:
        a = dimshuffle(a, (0, "x", 1))
    if vb:
        b = dimshuffle(b, (0, 1, "x"))
    out = MatMul()(a, b)
    keep = [0] + ([] if va else [1]) + ([] if vb else [2])
    return dimshuffle(out, keep) if len(keep) < 3 else out


# -- BLAS updates ---------------------------------------------------------------------
# Input orders match the Cython thunks of ``vmc.thunks._blas``:
#
# - ``Gemm(z, alpha, x, y, beta) = beta * z + alpha * x @ y`` (matrices),
# - ``Gemv(z, alpha, a, x, beta) = beta * z + alpha * a @ x`` (z, x vectors),
# - ``Ger(a, alpha, x, y) = a + alpha * outer(x, y)``.
#
# ``alpha`` and ``beta`` are 0-d of the output's dtype. A thunk may write into
# ``z`` (or ``a``) when the scheduler marks it destroyable: ``w - lr * dot(h.T, d)``
# as an update becomes one in-place gemm on ``w``'s buffer.
BLAS_DTYPES = ("float32", "float64")


def _as_scalar(v, dtype):
    v = as_tensor_variable(v)
    if v.type.ndim:
        v = dimshuffle(v, ())
    return cast(v, dtype)


def _check_ranks(op, vars_, ranks):
    for v, r in zip(vars_, ranks):
        if v.type.ndim != r:
            raise TypeError(f"{op}: expected ranks {ranks}, got "
                            f"{[w.type.ndim for w in vars_]}")
    dtypes = {v.type.dtype for v in vars_}
    if len(dtypes) != 1:
        raise TypeError(f"{op}: operands must share one dtype, got {sorted(dtypes)}")


class _ProductUpdate(Op):
    """``beta * z + alpha * a @ b``: the result has z's type, with the dims z
    leaves unknown taken from the product."""
    __props__ = ()
    label, ranks = "", ()

    def product_shape(self, a, b):
        raise NotImplementedError

    def make_node(self, z, alpha, a, b, beta):
        z, a, b = (as_tensor_variable(v) for v in (z, a, b))
        _check_ranks(self.label, (z, a, b), self.ranks)
        dt = z.type.dtype
        shape = tuple(s if s is not None else p
                      for s, p in zip(z.type.shape, self.product_shape(a, b)))
        return Apply(self, [z, _as_scalar(alpha, dt), a, b, _as_scalar(beta, dt)],
                     [TensorType(dt, shape).make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        z, alpha, a, b, beta = inputs
        (g,) = grads
        ga, gb = self.operand_grads(g, a, b)
        return [beta * g, tsum(g * dot(a, b)), alpha * ga, alpha * gb, tsum(g * z)]


class Gemm(_ProductUpdate):
    """``beta * z + alpha * x @ y``."""
    label, ranks = "gemm", (2, 2, 2)

    def product_shape(self, x, y):
        return (x.type.shape[0], y.type.shape[1])

    def operand_grads(self, g, x, y):
        return dot(g, y.T), dot(x.T, g)


class Gemv(_ProductUpdate):
    """``beta * z + alpha * a @ x``."""
    label, ranks = "gemv", (1, 2, 1)

    def product_shape(self, a, x):
        return (a.type.shape[0],)

    def operand_grads(self, g, a, x):
        return outer(g, x), dot(a.T, g)


class Ger(Op):
    """``a + alpha * outer(x, y)``."""
    __props__ = ()

    def make_node(self, a, alpha, x, y):
        a, x, y = (as_tensor_variable(v) for v in (a, x, y))
        _check_ranks("ger", (a, x, y), (2, 1, 1))
        dt = a.type.dtype
        return Apply(self, [a, _as_scalar(alpha, dt), x, y], [a.type.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        a, alpha, x, y = inputs
        (g,) = grads
        return [g, tsum(g * outer(x, y)), alpha * dot(g, y), alpha * dot(x, g)]


gemm, gemv, ger = Gemm(), Gemv(), Ger()
