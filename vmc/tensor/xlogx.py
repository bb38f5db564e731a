"""Theano's ``theano.tensor.xlogx``: ``x log x`` and ``x log y`` with ``0 log 0 = 0``."""
from __future__ import annotations

from .basic import as_tensor_variable
from .elemwise import xlogy

__all__ = ["xlogx", "xlogy0"]

xlogy0 = xlogy          # x * log(y), 0 where x is 0 (scipy's xlogy; Theano's gradient)


def xlogx(x):
    """``x * log(x)``, 0 where ``x`` is 0."""
    x = as_tensor_variable(x)
    return xlogy(x, x)
