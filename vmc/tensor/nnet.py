"""Neural-network ops: softmax, log_softmax, activations and cross-entropies."""
from __future__ import annotations

from vmc.graph.basic import Apply, Op

from .basic import as_tensor_variable
from .elemwise import log, log1p, maximum, sigmoid, softplus  # noqa: F401 (re-exported)
from .math import normalize_axis, sum as vsum


class Softmax(Op):
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``."""
    __props__ = ("axis",)

    def __init__(self, axis=-1):
        self.axis = axis

    def make_node(self, x):
        x = as_tensor_variable(x)
        if x.type.ndim == 0:
            raise TypeError("softmax needs at least a vector")
        if not x.type.dtype.startswith("float"):
            raise TypeError(f"softmax needs floats, got {x.type}")
        normalize_axis(self.axis, x.type.ndim, "softmax")
        return Apply(self, [x], [x.type.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        (sm,), (g,) = outputs, grads
        # d softmax: sm * (g - sum(g * sm))
        return [sm * (g - vsum(g * sm, axis=self.axis, keepdims=True))]


class LogSoftmax(Op):
    """``x - max - log(sum(exp(x - max)))`` along ``axis``: stable for any logits."""
    __props__ = ("axis",)

    def __init__(self, axis=-1):
        self.axis = axis

    make_node = Softmax.make_node
    infer_shape = Softmax.infer_shape

    def pullback(self, inputs, outputs, grads):
        (lsm,), (g,) = outputs, grads
        from .elemwise import exp
        return [g - exp(lsm) * vsum(g, axis=self.axis, keepdims=True)]


def softmax(x, axis=-1):
    return Softmax(axis)(x)


def log_softmax(x, axis=-1):
    return LogSoftmax(axis)(x)


def relu(x, alpha=0):
    x = as_tensor_variable(x)
    if alpha == 0:
        return maximum(x, 0)
    return maximum(x, 0) + alpha * (x - maximum(x, 0))


def binary_crossentropy(output, target):
    """``-(t log(p) + (1 - t) log(1 - p))`` elementwise."""
    return -(target * log(output) + (1 - target) * log1p(-output))


def sigmoid_binary_crossentropy(logits, target):
    """Binary cross-entropy of ``sigmoid(logits)``, computed from the logits stably."""
    return softplus(logits) - target * logits


def categorical_crossentropy(coding_dist, true_dist):
    """Per-row ``-log(p[target])`` for integer targets, or
    ``-sum(t * log(p), axis=-1)`` for one-hot / probability targets."""
    p, t = as_tensor_variable(coding_dist), as_tensor_variable(true_dist)
    if t.type.dtype.startswith(("int", "uint")):
        if t.type.ndim != p.type.ndim - 1:
            raise TypeError(f"categorical_crossentropy: integer targets {t.type} must have "
                            f"one dim less than the distribution {p.type}")
        from .creation import arange
        return -log(p)[arange(t.shape[0]), t] if p.type.ndim == 2 else -log(p)[t]
    return -vsum(t * log(p), axis=-1)
