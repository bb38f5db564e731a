"""vmc's own softmax and log-softmax along any axis: ``vt.softmax(x, axis=-1)``
(PyTensor's ``tensor.special``). Theano's ``vt.nnet.softmax`` differs for a
vector: it returns a ``(1, n)`` row, as Theano's did."""
from __future__ import annotations

from .nnet import LogSoftmax, Softmax

__all__ = ["softmax", "log_softmax"]


def softmax(x, axis=-1):
    return Softmax(axis)(x)


def log_softmax(x, axis=-1):
    return LogSoftmax(axis)(x)
