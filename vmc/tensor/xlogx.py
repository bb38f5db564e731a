"""Theano's ``theano.tensor.xlogx``: ``x log x`` and ``x log y`` with ``0 log 0 = 0``."""
from __future__ import annotations

from .basic import as_tensor_variable
from .elemwise import eq, log, switch

__all__ = ["xlogx", "xlogy0"]


def xlogx(x):
    """``x * log(x)``, 0 where ``x`` is 0."""
    x = as_tensor_variable(x)
    return switch(eq(x, 0), 0, x * log(x))


def xlogy0(x, y):
    """``x * log(y)``, 0 where ``x`` is 0 (whatever ``y``)."""
    x, y = as_tensor_variable(x), as_tensor_variable(y)
    return switch(eq(x, 0), 0, x * log(y))
