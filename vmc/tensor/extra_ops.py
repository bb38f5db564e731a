"""More array ops with NumPy semantics: split, repeat, tile, nonzero, diag, trace,
tril/triu.

``tile``, ``trace`` and ``tril``/``triu`` are built from other ops (alloc and
reshape; diagonal and sum; a mask and switch), so their shape rules and
gradients come from those ops.
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Apply, Constant, Op, Variable
from vmc.graph.type import TensorType

from .basic import as_tensor_variable, constant
from .elemwise import cast, dimshuffle, ge, le, maximum, minimum, neq, switch
from .math import normalize_axis, sum as vsum
from .shape import (alloc, as_shape_vector, concatenate, flatten, reshape, shape_i,
                    shape_padleft, shape_tuple)


def _axis1(axis, ndim, opname):
    (a,) = normalize_axis(axis, ndim, opname)
    return a


def _int_operand(v, opname, what):
    v = as_tensor_variable(v)
    if not v.type.dtype.startswith(("int", "uint")):
        raise TypeError(f"{opname}: {what} must be integers, got {v.type}")
    return cast(v, "int64")


# -- split -----------------------------------------------------------------------
class Split(Op):
    """``x`` cut along ``axis`` into ``n_splits`` pieces of the sizes given by
    the int vector ``splits``. The pieces are views of ``x``."""
    __props__ = ("n_splits", "axis")

    def __init__(self, n_splits, axis=0):
        self.n_splits, self.axis = int(n_splits), int(axis)
        if self.n_splits < 1:
            raise ValueError("split: n_splits must be >= 1")
        self.view_map = {i: [0] for i in range(self.n_splits)}

    def make_node(self, x, splits):
        x = as_tensor_variable(x)
        splits = _int_operand(splits, "split", "the split sizes")
        if not 0 <= self.axis < x.type.ndim:
            raise ValueError(f"split: axis {self.axis} is out of range for {x.type}")
        if splits.type.ndim != 1 or splits.type.shape[0] not in (None, self.n_splits):
            raise TypeError(f"split: the sizes must be a vector of length {self.n_splits}, "
                            f"got {splits.type}")
        sizes = [None] * self.n_splits
        if isinstance(splits, Constant):
            sizes = [int(s) for s in splits.data]
            total = x.type.shape[self.axis]
            if any(s < 0 for s in sizes) or (total is not None and sum(sizes) != total):
                raise ValueError(f"split: sizes {sizes} do not add up to dim {self.axis} "
                                 f"of {x.type}")
        outs = []
        for s in sizes:
            shape = list(x.type.shape)
            shape[self.axis] = s
            outs.append(TensorType(x.type.dtype, tuple(shape)).make_variable())
        return Apply(self, [x, splits], outs)

    def infer_shape(self, node, shapes):
        from .subtensor import getitem
        splits = node.inputs[1]
        return [tuple(getitem(splits, i) if d == self.axis else s
                      for d, s in enumerate(shapes[0])) for i in range(self.n_splits)]

    def pullback(self, inputs, outputs, grads):
        return [concatenate(grads, axis=self.axis), None]


def split(x, splits_size, n_splits=None, axis=0):
    """Theano's ``split(x, splits_size, n_splits, axis)``: pieces of the given
    sizes. ``split(x, n)`` with an int ``n`` (and no ``n_splits``) cuts into
    ``n`` equal pieces, as ``np.split(x, n)``. Returns a list."""
    x = as_tensor_variable(x)
    axis = _axis1(axis, x.type.ndim, "split")
    if n_splits is None and isinstance(splits_size, (int, np.integer)):
        n = int(splits_size)
        if n < 1:
            raise ValueError(f"split: cannot cut into {n} pieces")
        dim = x.type.shape[axis]
        if dim is not None:
            if dim % n:
                raise ValueError(f"split: dim {axis} of {x.type} does not divide into "
                                 f"{n} equal pieces")
            sizes = constant(np.full(n, dim // n, dtype="int64"))
        else:
            from .shape import MakeVector
            piece = shape_i(x, axis) // n          # the thunk checks divisibility
            sizes = MakeVector("int64")(*[piece] * n)
        n_splits = n
    elif isinstance(splits_size, Variable):
        sizes = splits_size
        if n_splits is None:
            n_splits = sizes.type.shape[0] if sizes.type.ndim == 1 else None
            if n_splits is None:
                raise ValueError("split: give n_splits when the sizes vector has an "
                                 "unknown length")
    else:
        sizes, _ = as_shape_vector(list(splits_size))
        n_splits = len(splits_size) if n_splits is None else n_splits
    out = Split(n_splits, axis)(x, sizes)
    return out if isinstance(out, list) else [out]


# -- repeat and tile ----------------------------------------------------------------
class Repeat(Op):
    """``np.repeat(x, repeats, axis)``: ``repeats`` an int scalar or vector."""
    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = int(axis)

    def make_node(self, x, repeats):
        x = as_tensor_variable(x)
        repeats = _int_operand(repeats, "repeat", "repeats")
        if not 0 <= self.axis < x.type.ndim:
            raise ValueError(f"repeat: axis {self.axis} is out of range for {x.type}")
        if repeats.type.ndim > 1:
            raise TypeError(f"repeat: repeats must be a scalar or a vector, got {repeats.type}")
        n = x.type.shape[self.axis]
        if repeats.type.ndim == 1 and None not in (n, repeats.type.shape[0]) \
                and repeats.type.shape[0] not in (1, n):
            raise TypeError(f"repeat: {repeats.type} repeats for dim {self.axis} of {x.type}")
        length = None
        if isinstance(repeats, Constant):
            r = repeats.data
            if (r < 0).any():
                raise ValueError("repeat: repeats must be >= 0")
            if r.ndim == 1 and r.size != 1:
                length = int(r.sum())
            elif n is not None:
                length = n * int(r.reshape(()))
        shape = list(x.type.shape)
        shape[self.axis] = length
        return Apply(self, [x, repeats], [TensorType(x.type.dtype, tuple(shape)).make_variable()])

    def infer_shape(self, node, shapes):
        x, repeats = node.inputs
        n = shapes[0][self.axis]
        if repeats.type.ndim == 0:
            length = n * repeats
        else:
            length = switch(neq(shape_i(repeats, 0), 1), vsum(repeats), n * repeats[0])
        return [tuple(length if d == self.axis else s for d, s in enumerate(shapes[0]))]

    def pullback(self, inputs, outputs, grads):
        x, repeats = inputs
        (g,) = grads
        a = self.axis
        if repeats.type.ndim == 0:
            # Each source element fed ``repeats`` consecutive outputs: fold them
            # into a new dim and sum it away.
            shp = list(shape_tuple(x))
            folded = reshape(g, shp[:a + 1] + [repeats] + shp[a + 1:])
            return [vsum(folded, axis=a + 1), None]
        from .creation import arange
        from .subtensor import inc_subtensor
        src = Repeat(0)(arange(shape_i(x, a)), repeats)
        zeros = x.zeros_like()
        return [inc_subtensor(zeros[(slice(None),) * a + (src,)], g), None]


def repeat(x, repeats, axis=None):
    """``np.repeat``: with ``axis=None`` the flattened ``x`` is repeated."""
    x = as_tensor_variable(x)
    if axis is None:
        x, axis = flatten(x), 0
    return Repeat(_axis1(axis, x.type.ndim, "repeat"))(x, repeats)


def tile(x, reps):
    """``np.tile(x, reps)``; ``reps`` an int or a sequence of ints / int scalars."""
    x = as_tensor_variable(x)
    if isinstance(reps, (int, np.integer)) or (isinstance(reps, Variable)
                                               and reps.type.ndim == 0):
        reps = (reps,)
    if isinstance(reps, Variable):
        n = reps.type.shape[0]
        if reps.type.ndim != 1 or n is None:
            raise TypeError(f"tile: reps must have a known length, got {reps.type}")
        reps = [reps[i] for i in range(n)]
    reps = [int(r) if isinstance(r, (int, np.integer)) else _int_operand(r, "tile", "reps")
            for r in reps]
    d = max(x.type.ndim, len(reps))
    reps = [1] * (d - len(reps)) + reps
    x = shape_padleft(x, d - x.type.ndim) if d > x.type.ndim else x
    if all(isinstance(r, int) and r == 1 for r in reps):
        return x
    # x as (1, s0, 1, s1, ...) broadcast to (r0, s0, r1, s1, ...), then each
    # (r_i, s_i) pair merged into one dim of length r_i * s_i.
    pattern, dims, merged = [], [], []
    for k, (r, s) in enumerate(zip(reps, shape_tuple(x))):
        pattern += ["x", k]
        dims += [r, s]
        st = x.type.shape[k]
        merged.append(r * st if isinstance(r, int) and st is not None else r * s)
    return reshape(alloc(dimshuffle(x, pattern), *dims), merged)


# -- nonzero ---------------------------------------------------------------------------
class Nonzero(Op):
    """``np.nonzero(x)``: one int64 index vector per dim of ``x``."""
    __props__ = ()

    def make_node(self, x):
        x = as_tensor_variable(x)
        if x.type.ndim == 0:
            raise TypeError("nonzero: a 0-d input has no dims to index; use x.flatten()")
        outs = [TensorType("int64", (None,)).make_variable() for _ in range(x.type.ndim)]
        return Apply(self, [x], outs)

    def infer_shape(self, node, shapes):
        n = cast(vsum(neq(node.inputs[0], 0)), "int64")
        return [(n,)] * len(node.outputs)

    def pullback(self, inputs, outputs, grads):
        return [None]


def nonzero(a, return_matrix=False):
    """A tuple of index vectors (or, with ``return_matrix``, one int64 matrix)."""
    out = Nonzero()(a)
    out = out if isinstance(out, list) else [out]
    if return_matrix:
        from .shape import stack
        return stack(out)
    return tuple(out)


def flatnonzero(a):
    return nonzero(flatten(as_tensor_variable(a)))[0]


def nonzero_values(a):
    a = flatten(as_tensor_variable(a))
    return a[flatnonzero(a)]


# -- diagonals ---------------------------------------------------------------------------
def _diag_len(n1, n2, k):
    if k >= 0:
        return maximum(minimum(n1, n2 - k), 0)
    return maximum(minimum(n1 + k, n2), 0)


class ExtractDiag(Op):
    """``np.diagonal(x, offset, axis1, axis2)`` (a copy): the diagonal becomes
    the last dim."""
    __props__ = ("offset", "axis1", "axis2")

    def __init__(self, offset=0, axis1=0, axis2=1):
        self.offset, self.axis1, self.axis2 = int(offset), int(axis1), int(axis2)
        if self.axis1 == self.axis2:
            raise ValueError("diagonal: axis1 and axis2 must differ")

    def make_node(self, x):
        x = as_tensor_variable(x)
        nd = x.type.ndim
        if nd < 2 or not (0 <= self.axis1 < nd and 0 <= self.axis2 < nd):
            raise TypeError(f"diagonal: axes ({self.axis1}, {self.axis2}) need a tensor of "
                            f"at least 2 dims, got {x.type}")
        n1, n2 = x.type.shape[self.axis1], x.type.shape[self.axis2]
        length = None
        if n1 is not None and n2 is not None:
            k = self.offset
            length = max(min(n1, n2 - k), 0) if k >= 0 else max(min(n1 + k, n2), 0)
        shape = tuple(s for d, s in enumerate(x.type.shape)
                      if d not in (self.axis1, self.axis2)) + (length,)
        return Apply(self, [x], [TensorType(x.type.dtype, shape).make_variable()])

    def infer_shape(self, node, shapes):
        (s,) = shapes
        rest = tuple(v for d, v in enumerate(s) if d not in (self.axis1, self.axis2))
        n1, n2 = (as_tensor_variable(s[self.axis1]), as_tensor_variable(s[self.axis2]))
        return [rest + (_diag_len(n1, n2, self.offset),)]

    def pullback(self, inputs, outputs, grads):
        from .creation import arange
        from .subtensor import set_subtensor
        (x,), (g,) = inputs, grads
        k = self.offset
        others = [d for d in range(x.type.ndim) if d not in (self.axis1, self.axis2)]
        perm = others + [self.axis1, self.axis2]
        zeros = dimshuffle(x.zeros_like(), perm)
        pos = arange(shape_i(g, g.type.ndim - 1))
        rows, cols = pos + max(0, -k), pos + max(0, k)
        gt = set_subtensor(zeros[..., rows, cols], g)
        inverse = [perm.index(d) for d in range(x.type.ndim)]
        return [dimshuffle(gt, inverse)]

    def __str__(self):
        return f"ExtractDiag{{offset={self.offset}, axes=({self.axis1}, {self.axis2})}}"


class AllocDiag(Op):
    """``np.diag(v, k)`` for a vector ``v``: a square matrix of side len(v) + |k|."""
    __props__ = ("offset",)

    def __init__(self, offset=0):
        self.offset = int(offset)

    def make_node(self, v):
        v = as_tensor_variable(v)
        if v.type.ndim != 1:
            raise TypeError(f"AllocDiag: expected a vector, got {v.type}")
        n = v.type.shape[0]
        side = None if n is None else n + abs(self.offset)
        return Apply(self, [v], [TensorType(v.type.dtype, (side, side)).make_variable()])

    def infer_shape(self, node, shapes):
        side = shapes[0][0] + abs(self.offset)
        return [(side, side)]

    def pullback(self, inputs, outputs, grads):
        return [ExtractDiag(self.offset, 0, 1)(grads[0])]


def diagonal(x, offset=0, axis1=0, axis2=1):
    x = as_tensor_variable(x)
    a1 = _axis1(axis1, x.type.ndim, "diagonal")
    a2 = _axis1(axis2, x.type.ndim, "diagonal")
    return ExtractDiag(offset, a1, a2)(x)


def diag(v, k=0):
    """``np.diag``: the ``k``-th diagonal of a matrix, or a matrix with the
    vector ``v`` on its ``k``-th diagonal."""
    v = as_tensor_variable(v)
    if v.type.ndim == 1:
        return AllocDiag(k)(v)
    if v.type.ndim == 2:
        return ExtractDiag(k, 0, 1)(v)
    raise TypeError(f"diag: expected a vector or a matrix, got {v.type}; use vt.diagonal "
                    f"for higher ranks")


def trace(x, offset=0, axis1=0, axis2=1):
    """``np.trace``: the sum along a diagonal."""
    d = diagonal(x, offset, axis1, axis2)
    return vsum(d, axis=-1)


def _tri_mask(x, k, lower):
    from .creation import arange
    rows = dimshuffle(arange(shape_i(x, -2)), (0, "x"))
    cols = dimshuffle(arange(shape_i(x, -1)), ("x", 0))
    return le(cols, rows + k) if lower else ge(cols, rows + k)


def tril(x, k=0):
    """``np.tril``: zeros above the ``k``-th diagonal (of the last two dims)."""
    x = as_tensor_variable(x)
    if x.type.ndim < 2:
        raise TypeError(f"tril: expected at least a matrix, got {x.type}")
    return switch(_tri_mask(x, k, True), x, constant(0, dtype=x.type.dtype))


def triu(x, k=0):
    """``np.triu``: zeros below the ``k``-th diagonal (of the last two dims)."""
    x = as_tensor_variable(x)
    if x.type.ndim < 2:
        raise TypeError(f"triu: expected at least a matrix, got {x.type}")
    return switch(_tri_mask(x, k, False), x, constant(0, dtype=x.type.dtype))


def to_one_hot(y, nb_class, dtype=None):
    """The one-hot code of each entry of the int vector ``y`` (values in
    ``0 .. nb_class - 1``): a ``(len(y), nb_class)`` matrix of ``dtype``
    (default floatX), as Theano's ``extra_ops.to_one_hot``."""
    from vmc.config import config
    from .creation import arange
    from .elemwise import eq
    y = as_tensor_variable(y)
    if y.type.ndim != 1 or not y.type.dtype.startswith(("int", "uint")):
        raise TypeError(f"to_one_hot: y must be an int vector, got {y.type}")
    return cast(eq(dimshuffle(y, (0, "x")), arange(nb_class)), dtype or config.floatX)


# Theano's theano.tensor.extra_ops names for the cumulative ops.
from .ordering import CumOp, cumprod, cumsum  # noqa: E402,F401
