"""Theano's ``theano.scalar`` names that programs call (``upcast``)."""
from __future__ import annotations

import numpy as np

from vmc.config import config

__all__ = ["upcast"]


def upcast(dtype, *dtypes):
    """The dtype of a result computed from values of ``dtype, *dtypes``
    (numpy's promotion; "floatX" stands for ``config.floatX``)."""
    names = [config.floatX if d == "floatX" else d for d in (dtype,) + dtypes]
    return np.result_type(*names).name
