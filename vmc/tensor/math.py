"""Reductions and matrix products."""
from __future__ import annotations

import builtins
from typing import NamedTuple

import numpy as np

from vmc.graph.basic import Apply, Op
from vmc.graph.type import TensorType

from .basic import as_tensor_variable, constant
from .elemwise import cast, dimshuffle, eq, exp, insert_axes, isinf, log, sqr, sqrt, switch


def normalize_axis(axis, ndim, opname="reduction"):
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"{opname}: axis {a} is out of range for a {ndim}-d tensor")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{opname}: repeated axis in {axis}")
    return tuple(sorted(out))


class Reduction(NamedTuple):
    label: str          # how CAReduce prints: Sum{axis=(0,)}
    impl: object        # numpy's reduction (np.sum, ...)
    fusable: bool       # the fusion pass may fuse it after its elementwise producer


# The reductions, by the name of their scalar op (the one table: the fusion
# pass, the numpy thunks and the C generator all read this vocabulary).
REDUCTIONS = {
    "add": Reduction("Sum", np.sum, True),
    "mul": Reduction("Prod", np.prod, True),
    "maximum": Reduction("Max", np.max, True),
    "minimum": Reduction("Min", np.min, True),
    "and": Reduction("All", np.all, False),
    "or": Reduction("Any", np.any, False),
}


class CAReduce(Op):
    """Reduce over ``axis`` (a sorted tuple) with a commutative, associative op."""
    __props__ = ("scalar_name", "axis")

    def __init__(self, scalar_name, axis):
        self.scalar_name = scalar_name
        self.axis = tuple(axis)

    @property
    def impl(self):
        return REDUCTIONS[self.scalar_name].impl

    def make_node(self, x):
        x = as_tensor_variable(x)
        if builtins.any(a >= x.type.ndim for a in self.axis):
            raise ValueError(f"{self}: axis out of range for {x.type}")
        dtype = _reduce_dtype(self.scalar_name, x.type.dtype)
        shape = tuple(s for d, s in enumerate(x.type.shape) if d not in self.axis)
        return Apply(self, [x], [TensorType(dtype, shape).make_variable()])

    def infer_shape(self, node, shapes):
        return [tuple(s for d, s in enumerate(shapes[0]) if d not in self.axis)]

    def pullback(self, inputs, outputs, grads):
        (x,), (out,), (g,) = inputs, outputs, grads
        if self.scalar_name in ("and", "or"):
            return [None]
        g_full = _expand_to(g, x, self.axis)
        if self.scalar_name == "add":
            return [g_full]
        if self.scalar_name == "mul":
            return [g_full * self._prod_others(x)]
        out_full = _expand_to(out, x, self.axis)
        return [g_full * eq(x, out_full)]          # max/min: to the arg(s) of the extremum

    def _prod_others(self, x):
        """d prod(x) / dx_i = the product of the other elements. out / x fails
        at zeros, so count them: with none it is prod / x_i; with one, the
        product of the rest at the zero and 0 elsewhere; with more, 0."""
        zero = eq(x, 0)
        safe = switch(zero, 1, x)
        rest = _expand_to(CAReduce("mul", self.axis)(safe), x, self.axis)
        n_zero = _expand_to(CAReduce("add", self.axis)(cast(zero, "int64")), x, self.axis)
        return switch(eq(n_zero, 0), rest / safe, switch(eq(n_zero, 1) & zero, rest, 0))

    def __str__(self):
        return f"{REDUCTIONS[self.scalar_name].label}{{axis={self.axis}}}"


def _expand_to(g, x, axes):
    """Broadcast ``g`` (``x`` reduced over ``axes``) back to ``x``'s shape."""
    from .shape import alloc_like
    return alloc_like(insert_axes(g, axes, x.type.ndim), x)


def _reduce(name, x, axis, keepdims, dtype=None):
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.type.ndim, REDUCTIONS[name].label.lower())
    if dtype is not None:
        x = cast(x, dtype)
    if axes:
        out = CAReduce(name, axes)(x)
    else:
        # Nothing to reduce (a 0-d input, or axis=()): numpy still applies the
        # reduction's dtype rule (the sum of int8 values is int64).
        out = cast(x, _reduce_dtype(name, x.type.dtype))
    return _keep(out, x.type.ndim, axes) if keepdims else out


def _reduce_dtype(name, dtype):
    if name in ("and", "or"):
        return "bool"
    return str(np.asarray(REDUCTIONS[name].impl(np.ones(1, dtype))).dtype)


def _keep(out, ndim, axes):
    return insert_axes(out, axes, ndim)


def sum(x, axis=None, dtype=None, keepdims=False, acc_dtype=None):
    """The sum over ``axis``; ``acc_dtype``: the dtype to add in (numpy's rule
    by default), ``dtype``: the result's (the accumulator's by default)."""
    return _accumulate("add", x, axis, dtype, keepdims, acc_dtype)


def prod(x, axis=None, dtype=None, keepdims=False, acc_dtype=None, no_zeros_in_input=False):
    """The product over ``axis`` (``dtype`` and ``acc_dtype`` as in ``sum``).
    ``no_zeros_in_input`` is Theano's hint for a cheaper gradient; vmc's
    gradient handles zeros either way."""
    return _accumulate("mul", x, axis, dtype, keepdims, acc_dtype)


def _accumulate(name, x, axis, dtype, keepdims, acc_dtype):
    out = _reduce(name, x, axis, keepdims, acc_dtype if acc_dtype is not None else dtype)
    return cast(out, dtype) if dtype is not None else out


def max(x, axis=None, keepdims=False):
    return _reduce("maximum", x, axis, keepdims)


def min(x, axis=None, keepdims=False):
    return _reduce("minimum", x, axis, keepdims)


def all(x, axis=None, keepdims=False):
    return _reduce("and", x, axis, keepdims)


def any(x, axis=None, keepdims=False):
    return _reduce("or", x, axis, keepdims)


def _count(x, axes):
    from .shape import shape_i
    n = None
    for a in axes:
        s = shape_i(x, a)
        n = s if n is None else n * s
    return constant(1, dtype="int64") if n is None else n


def mean(x, axis=None, dtype=None, keepdims=False, acc_dtype=None):
    """The mean over ``axis``: a float (float64 for integers, as numpy). With
    ``dtype`` the result has that dtype; ``acc_dtype`` is the dtype summed in."""
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.type.ndim, "mean")
    s = sum(x, axis=axes, keepdims=keepdims, acc_dtype=acc_dtype)
    fdtype = s.type.dtype if s.type.dtype.startswith("float") else "float64"
    out = cast(s, fdtype) / cast(_count(x, axes), fdtype)
    return cast(out, dtype) if dtype is not None else out


def var(x, axis=None, ddof=0, keepdims=False, corrected=False):
    """The variance over ``axis``, divided by ``n - ddof``. It is computed
    from the centered values, so Theano's ``corrected`` (a two-pass
    refinement of the same quantity) changes nothing."""
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.type.ndim, "var")
    centered = x - mean(x, axis=axes, keepdims=True)
    ss = sum(sqr(centered), axis=axes, keepdims=keepdims)
    n = cast(_count(x, axes), ss.type.dtype)
    return ss / (n - ddof) if ddof else ss / n


def std(x, axis=None, ddof=0, keepdims=False, corrected=False):
    return sqrt(var(x, axis=axis, ddof=ddof, keepdims=keepdims))


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` computed without overflow: shift by the max."""
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.type.ndim, "logsumexp")
    m = max(x, axis=axes, keepdims=True)
    m = switch(isinf(m), 0, m)
    out = log(sum(exp(x - m), axis=axes, keepdims=True)) + m
    return out if keepdims else _drop(out, x.type.ndim, axes)


def _drop(x, ndim, axes):
    return dimshuffle(x, [d for d in range(ndim) if d not in axes])


class Argmax(Op):
    """Index of the max (``kind="max"``) or min along one axis, or of the flat array."""
    __props__ = ("kind", "axis")

    def __init__(self, kind, axis):
        self.kind, self.axis = kind, axis

    def make_node(self, x):
        x = as_tensor_variable(x)
        shape = () if self.axis is None else tuple(
            s for d, s in enumerate(x.type.shape) if d != self.axis)
        return Apply(self, [x], [TensorType("int64", shape).make_variable()])

    def infer_shape(self, node, shapes):
        if self.axis is None:
            return [()]
        return [tuple(s for d, s in enumerate(shapes[0]) if d != self.axis)]

    def pullback(self, inputs, outputs, grads):
        return [None]

    def __str__(self):
        return f"Arg{self.kind}{{axis={self.axis}}}"


def _arg(kind, x, axis, keepdims):
    x = as_tensor_variable(x)
    if axis is not None:
        (axis,) = normalize_axis(axis, x.type.ndim, f"arg{kind}")
    out = Argmax(kind, axis)(x)
    if keepdims:
        out = _keep(out, x.type.ndim, tuple(range(x.type.ndim)) if axis is None else (axis,))
    return out


def argmax(x, axis=None, keepdims=False):
    return _arg("max", x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    return _arg("min", x, axis, keepdims)


# -- products ------------------------------------------------------------------
class Dot(Op):
    """``np.dot`` of vectors and matrices (each input 1-d or 2-d)."""
    __props__ = ()

    def make_node(self, x, y):
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        if x.type.ndim not in (1, 2) or y.type.ndim not in (1, 2):
            raise TypeError(f"dot: expected vectors or matrices, got {x.type} and {y.type}; "
                            f"use vt.tensordot or vt.matmul for higher ranks")
        kx, ky = x.type.shape[-1], y.type.shape[0]
        if kx is not None and ky is not None and kx != ky:
            raise TypeError(f"dot: inner dimensions differ: {x.type} and {y.type}")
        shape = x.type.shape[:-1] + y.type.shape[1:]
        dtype = np.result_type(x.type.dtype, y.type.dtype).name
        return Apply(self, [x, y], [TensorType(dtype, shape).make_variable()])

    def infer_shape(self, node, shapes):
        return [tuple(shapes[0][:-1]) + tuple(shapes[1][1:])]

    def pullback(self, inputs, outputs, grads):
        (x, y), (g,) = inputs, grads
        nx, ny = x.type.ndim, y.type.ndim
        if nx == 2 and ny == 2:
            gx, gy = dot(g, y.T), dot(x.T, g)
        elif nx == 2 and ny == 1:
            gx, gy = outer(g, y), dot(g, x)
        elif nx == 1 and ny == 2:
            gx, gy = dot(y, g), outer(x, g)
        else:
            gx, gy = g * y, g * x
        return [gx, gy]


_dot = Dot()


def dot(x, y):
    """``np.dot``: a scalar operand multiplies; above two dims, a sum of
    products over the last axis of ``x`` and the second-to-last of ``y``
    (a ``tensordot``), as in numpy and Theano."""
    x, y = as_tensor_variable(x), as_tensor_variable(y)
    if x.type.ndim == 0 or y.type.ndim == 0:
        return x * y
    if x.type.ndim > 2 or y.type.ndim > 2:
        from .blas_ops import tensordot
        return tensordot(x, y, [[x.type.ndim - 1], [builtins.max(0, y.type.ndim - 2)]])
    return _dot(x, y)


def outer(x, y):
    x, y = as_tensor_variable(x), as_tensor_variable(y)
    from .shape import flatten
    if x.type.ndim != 1:
        x = flatten(x)
    if y.type.ndim != 1:
        y = flatten(y)
    return dimshuffle(x, (0, "x")) * dimshuffle(y, ("x", 0))


def transpose(x, axes=None):
    x = as_tensor_variable(x)
    if axes is None:
        axes = tuple(reversed(range(x.type.ndim)))
    return dimshuffle(x, tuple(int(a) % builtins.max(x.type.ndim, 1) for a in axes))
