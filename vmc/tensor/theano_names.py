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

from .basic import as_tensor_variable
from .elemwise import abs as _abs, reciprocal, sqr
from .shape import expand_dims, specify_broadcastable, unbroadcast

__all__ = ["Apply", "Constant", "Op", "Variable", "TensorType", "Type", "grad", "jacobian",
           "hessian", "verify_grad", "square", "abs_", "inv", "addbroadcast",
           "patternbroadcast", "unbroadcast", "shape_padaxis"]

square = sqr
abs_ = _abs
inv = reciprocal


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
