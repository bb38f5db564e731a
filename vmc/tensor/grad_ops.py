"""Ops that change only the gradient: the identity in the forward pass.

Theano's ``grad_clip``, ``grad_scale``, ``zero_grad``, ``disconnected_grad``,
``consider_constant`` and ``undefined_grad`` (public as ``vmc.gradient.*``).
Each node is an identity view; canonicalize removes it once the gradient is
built, so a compiled function pays nothing for it.
"""
from __future__ import annotations

from vmc.graph.basic import Apply, Op
from vmc.graph.grad import ZERO_GRADIENT, NullGradient

from .basic import as_tensor_variable

__all__ = ["ViewOp", "GradClip", "GradScale", "ZeroGrad", "DisconnectedGrad",
           "UndefinedGrad", "grad_clip", "grad_scale", "zero_grad", "disconnected_grad",
           "consider_constant", "undefined_grad"]


class ViewOp(Op):
    """The identity (Theano's ViewOp); subclasses change only its gradient."""
    view_map = {0: [0]}

    def make_node(self, x):
        x = as_tensor_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        return [grads[0]]

    def pushforward(self, inputs, outputs, tangents):
        return [tangents[0]]      # forward mode sees the identity, whatever the pullback


class GradClip(ViewOp):
    """The gradient flowing back is clipped to ``[lower, upper]``."""
    __props__ = ("lower", "upper")

    def __init__(self, lower, upper):
        if lower > upper:
            raise ValueError(f"grad_clip: lower bound {lower} is above upper bound {upper}")
        self.lower, self.upper = float(lower), float(upper)

    def pullback(self, inputs, outputs, grads):
        from .elemwise import clip
        return [clip(grads[0], self.lower, self.upper)]


class GradScale(ViewOp):
    """The gradient flowing back is multiplied by ``multiplier``."""
    __props__ = ("multiplier",)

    def __init__(self, multiplier):
        self.multiplier = float(multiplier)

    def pullback(self, inputs, outputs, grads):
        return [grads[0] * self.multiplier]


class ZeroGrad(ViewOp):
    """The gradient flowing back is zero (the input still counts as connected)."""

    def pullback(self, inputs, outputs, grads):
        return [ZERO_GRADIENT]


class DisconnectedGrad(ViewOp):
    """No gradient flows back: the input is disconnected from the cost here."""

    def pullback(self, inputs, outputs, grads):
        return [None]


class UndefinedGrad(ViewOp):
    """Asking for the gradient through this node is an error."""

    def pullback(self, inputs, outputs, grads):
        return [NullGradient("the gradient is undefined here (vmc.gradient.undefined_grad)")]


def grad_clip(x, lower_bound, upper_bound):
    """``x``, whose gradient is clipped to ``[lower_bound, upper_bound]`` (Theano's)."""
    return GradClip(lower_bound, upper_bound)(x)


def grad_scale(x, multiplier):
    """``x``, whose gradient is multiplied by ``multiplier``."""
    return GradScale(multiplier)(x)


def zero_grad(x):
    """``x``, whose gradient is zero."""
    return ZeroGrad()(x)


def disconnected_grad(x):
    """``x``, through which no gradient flows (a stop-gradient)."""
    return DisconnectedGrad()(x)


def consider_constant(x):
    """``x``, treated as a constant by ``grad`` (Theano's name: a zero gradient)."""
    return ZeroGrad()(x)


def undefined_grad(x):
    """``x``, whose gradient raises ``NullGradientError`` when asked for."""
    return UndefinedGrad()(x)
