"""Theano's spellings in ``vmc.tensor``, so that ``import vmc.tensor as T``
runs Theano programs unchanged.

Each name here is a thin alias or wrapper over vmc's own vocabulary, with
Theano's signature: positional arguments mean what they meant in Theano.
What does not port, and why, is in docs/porting.md.
"""
from __future__ import annotations

from vmc.graph.basic import Apply, Constant, Op, Variable  # noqa: F401  (T.Variable, ...)
from vmc.graph.type import TensorType, Type  # noqa: F401  (T.TensorType(dtype, broadcastable))
# Theano's tensor module exposes the gradient functions too (T.grad). vmc.gradient
# imports only the graph at import time: it builds graphs when called.
from vmc.gradient import grad, hessian, jacobian, verify_grad  # noqa: F401

import numpy as np

from vmc.graph.basic import Constant as _Constant

from .basic import as_tensor_variable
from .elemwise import abs as _abs, cast, int_div, maximum, minimum, reciprocal, round, sign, sqr
from .math import argmax, max as _max, min as _min
from .shape import (alloc_like, concatenate, expand_dims, full_like, specify_broadcastable,
                    stack, unbroadcast)

__all__ = ["Apply", "Constant", "Op", "Variable", "TensorType", "Type", "grad", "jacobian",
           "hessian", "verify_grad", "square", "abs_", "inv", "sgn", "floor_div", "as_tensor",
           "addbroadcast", "patternbroadcast", "unbroadcast", "shape_padaxis", "largest",
           "smallest", "max_and_argmax", "ptp", "iround", "exp2", "deg2rad", "rad2deg",
           "isclose", "allclose", "fill", "second", "swapaxes", "roll", "horizontal_stack",
           "vertical_stack", "stacklists", "get_vector_length", "get_scalar_constant_value",
           "NotScalarConstantError"]

square = sqr
abs_ = _abs
inv = reciprocal
sgn = sign
floor_div = int_div
as_tensor = as_tensor_variable


def addbroadcast(x, *axes):
    """``x`` with ``axes`` known to have length 1 (checked when run)."""
    return specify_broadcastable(x, *axes)


def patternbroadcast(x, broadcastable):
    """``x`` with the broadcast pattern ``broadcastable`` (a bool per dim):
    dims marked True are known to be 1 (checked when run), the others not."""
    x = as_tensor_variable(x)
    broadcastable = tuple(bool(b) for b in broadcastable)
    if len(broadcastable) != x.type.ndim:
        raise ValueError(f"patternbroadcast: a pattern of {len(broadcastable)} dims for "
                         f"{x.type}")
    x = unbroadcast(x, *[d for d, b in enumerate(broadcastable) if not b])
    return specify_broadcastable(x, *[d for d, b in enumerate(broadcastable) if b])


def shape_padaxis(t, axis):
    """``t`` with a new dim of length 1 at ``axis`` (negative counts from the end
    of the result, as in Theano)."""
    return expand_dims(t, axis)


def largest(*args):
    """The elementwise maximum of all the arguments."""
    out = args[0]
    for a in args[1:]:
        out = maximum(out, a)
    return out


def smallest(*args):
    """The elementwise minimum of all the arguments."""
    out = args[0]
    for a in args[1:]:
        out = minimum(out, a)
    return out


def max_and_argmax(a, axis=None, keepdims=False):
    """``(max, argmax)`` along one ``axis`` (or of the flattened tensor)."""
    return _max(a, axis=axis, keepdims=keepdims), argmax(a, axis=axis, keepdims=keepdims)


def ptp(a, axis=None):
    """The range ``max - min`` along ``axis``."""
    return _max(a, axis=axis) - _min(a, axis=axis)


def iround(a):
    """``round(a)`` as int64."""
    return cast(round(a), "int64")


def exp2(a):
    return 2.0 ** as_tensor_variable(a)


def deg2rad(x):
    return x * (np.pi / 180.0)


def rad2deg(x):
    return x * (180.0 / np.pi)


def isclose(a, b, rtol=1.0e-5, atol=1.0e-8, equal_nan=False):
    """``|a - b| <= atol + rtol |b|`` elementwise, as numpy."""
    from .elemwise import and_, eq, isnan, le, or_
    close = le(_abs(a - b), atol + rtol * _abs(b))
    close = or_(close, eq(a, b))                 # equal infinities
    return or_(close, and_(isnan(a), isnan(b))) if equal_nan else close


def allclose(a, b, rtol=1.0e-5, atol=1.0e-8, equal_nan=False):
    from .math import all as _all
    return _all(isclose(a, b, rtol, atol, equal_nan))


def fill(model, value):
    """An array of ``model``'s shape filled with ``value`` (a number or a
    scalar variable), of ``value``'s dtype (Theano's ``fill``)."""
    if isinstance(value, Variable):
        return alloc_like(value, as_tensor_variable(model))
    return full_like(model, value)


def second(a, b):
    """``b`` broadcast to the shape of ``a`` (Theano's ``second``)."""
    return fill(a, b)


def swapaxes(y, axis1, axis2):
    return as_tensor_variable(y).swapaxes(axis1, axis2)


def roll(x, shift, axis=None):
    """``np.roll``: elements shifted by ``shift`` along ``axis`` (of the
    flattened tensor when None), those past the end coming in first."""
    x = as_tensor_variable(x)
    if axis is None:
        return roll(x.flatten(), shift, 0).reshape(x.shape)
    axis %= x.ndim
    n = x.shape[axis]
    k = as_tensor_variable(shift) % n
    head = (slice(None),) * axis
    return concatenate([x[head + (slice(n - k, None),)], x[head + (slice(None, n - k),)]],
                       axis=axis)


def horizontal_stack(*args):
    """Matrices (or vectors) side by side: ``concatenate`` along axis 1 (0 for vectors)."""
    args = [as_tensor_variable(a) for a in args]
    return concatenate(args, axis=1 if args[0].ndim > 1 else 0)


def vertical_stack(*args):
    """Matrices one above the other: ``concatenate`` along axis 0."""
    return concatenate([as_tensor_variable(a) for a in args], axis=0)


def stacklists(arg):
    """A tensor from nested lists of scalars (or tensors): ``stacklists([[a, b], [c, d]])``."""
    if isinstance(arg, (tuple, list)):
        return stack([stacklists(a) for a in arg])
    return as_tensor_variable(arg)


class NotScalarConstantError(TypeError):
    """The variable is not a constant scalar (``get_scalar_constant_value``)."""


def get_scalar_constant_value(v):
    """The value of ``v`` when it is a constant of one element (looking
    through casts and broadcasts), else NotScalarConstantError."""
    from .elemwise import DimShuffle, Elemwise
    while not isinstance(v, _Constant) and getattr(v, "owner", None) is not None:
        op = v.owner.op
        if isinstance(op, DimShuffle) or (isinstance(op, Elemwise) and
                                          op.scalar_op.name in ("cast", "identity")):
            v = v.owner.inputs[0]
            continue
        break
    if isinstance(v, (int, float, np.number)):
        return np.asarray(v)
    if isinstance(v, _Constant) and v.data.size == 1:
        return v.data.reshape(())
    raise NotScalarConstantError(f"{v!r} is not a constant scalar")


def get_vector_length(v):
    """The length of the vector ``v`` when it is known statically (a shape
    vector, a constant, a vector of static length), else ValueError."""
    v = as_tensor_variable(v)
    if v.ndim != 1:
        raise TypeError(f"get_vector_length: expected a vector, got {v.type}")
    if v.type.shape[0] is None:
        raise ValueError(f"get_vector_length: the length of {v!r} is not known statically")
    return v.type.shape[0]
