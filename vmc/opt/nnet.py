"""Softmax and cross-entropy as one op, with a stable gradient.

``CrossentropySoftmaxArgmax(x, y)`` takes logits ``x`` (n, k) and integer
targets ``y`` (n,) and returns, in one pass over ``x``:

- ``nll[i] = logsumexp(x[i]) - x[i, y[i]]`` (finite for any finite logits),
- ``sm = softmax(x)`` (the gradient needs it),
- ``am = argmax(x, axis=1)`` (accuracy, for free).

Its gradient is ``CrossentropySoftmaxDx(g_nll, sm, y) = sm * g[:, None] -
onehot(y) * g[:, None]``, which never divides by a probability. The stabilize
pass turns ``-log(softmax(x))[arange(n), y]`` and the gradient graph that
``vmc.grad`` built for it into these two ops.
"""
from __future__ import annotations

from vmc.graph.basic import Apply, Op
from vmc.graph.type import TensorType
from vmc.tensor.basic import as_tensor_variable


def _check(x, y, who):
    if x.type.ndim != 2 or not x.type.dtype.startswith("float"):
        raise TypeError(f"{who}: logits must be a float matrix, got {x.type}")
    if y.type.ndim != 1 or not y.type.dtype.startswith(("int", "uint")):
        raise TypeError(f"{who}: targets must be an integer vector, got {y.type}")


class CrossentropySoftmaxArgmax(Op):
    """``(nll, softmax, argmax)`` of logits ``x`` against integer targets ``y``."""
    __props__ = ()

    def make_node(self, x, y):
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        _check(x, y, "crossentropy_softmax")
        n = x.type.shape[0] if x.type.shape[0] is not None else y.type.shape[0]
        outs = [TensorType(x.type.dtype, (n,)).make_variable(),
                TensorType(x.type.dtype, (n, x.type.shape[1])).make_variable(),
                TensorType("int64", (n,)).make_variable()]
        return Apply(self, [x, y], outs)

    def infer_shape(self, node, shapes):
        (n, k), _ = shapes
        return [(n,), (n, k), (n,)]

    def pullback(self, inputs, outputs, grads):
        from vmc.tensor.math import sum as vsum
        x, y = inputs
        nll, sm, _ = outputs
        g_nll, g_sm = grads[0], grads[1]
        gx = CrossentropySoftmaxDx()(g_nll, sm, y)
        if not _is_zeros(g_sm):
            gx = gx + sm * (g_sm - vsum(g_sm * sm, axis=1, keepdims=True))
        return [gx, None]


def _is_zeros(v):
    from .rewriting import const_value
    from vmc.tensor.shape import Alloc
    if v.owner is not None and isinstance(v.owner.op, Alloc):
        v = v.owner.inputs[0]
    return const_value(v) == 0


class CrossentropySoftmaxDx(Op):
    """``d nll / d x`` given ``g = d cost / d nll``: ``sm * g[:, None]`` minus
    ``g`` at each row's target."""
    __props__ = ()

    def make_node(self, g, sm, y):
        g, sm, y = (as_tensor_variable(v) for v in (g, sm, y))
        _check(sm, y, "crossentropy_softmax_dx")
        if g.type.ndim != 1:
            raise TypeError(f"crossentropy_softmax_dx: the gradient must be a vector, "
                            f"got {g.type}")
        if g.type.dtype != sm.type.dtype:
            from vmc.tensor.elemwise import cast
            g = cast(g, sm.type.dtype)
        return Apply(self, [g, sm, y], [sm.type.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[1]]

    def pullback(self, inputs, outputs, grads):
        raise NotImplementedError("the second derivative of crossentropy_softmax is not "
                                  "implemented")


def crossentropy_softmax(x, y):
    """Per-row ``-log(softmax(x))[i, y[i]]``, computed stably in one op."""
    return CrossentropySoftmaxArgmax()(x, y)[0]
