"""Neural-network ops: softmax, log_softmax, activations and cross-entropies."""
from __future__ import annotations

from vmc.graph.basic import Apply, Op
from vmc.graph.type import TensorType

from ..basic import as_tensor_variable
from ..elemwise import log, log1p, maximum, sigmoid, softplus  # noqa: F401 (re-exported)
from ..elemwise import const_value
from ..math import normalize_axis, sum as vsum


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
        from ..elemwise import exp
        return [g - exp(lsm) * vsum(g, axis=self.axis, keepdims=True)]


def softmax(c, axis=None):
    """Theano's ``nnet.softmax``: along the last axis (or ``axis``). A vector
    gives a ``(1, n)`` row, as in Theano; ``vt.softmax`` keeps it a vector."""
    return Softmax(-1 if axis is None else axis)(_theano_rows(c, axis))


def logsoftmax(c, axis=None):
    """Theano's ``nnet.logsoftmax``: a vector gives a ``(1, n)`` row, as ``softmax``."""
    return LogSoftmax(-1 if axis is None else axis)(_theano_rows(c, axis))


def _theano_rows(c, axis):
    c = as_tensor_variable(c)
    if axis is None and c.type.ndim == 1:
        from ..shape import shape_padleft
        c = shape_padleft(c)
    return c


def relu(x, alpha=0):
    """``max(x, 0)``, or ``x`` scaled by ``alpha`` below 0 (leaky)."""
    x = as_tensor_variable(x)
    if alpha == 0:
        return maximum(x, 0)
    return maximum(x, 0) + alpha * (x - maximum(x, 0))


def elu(x, alpha=1):
    """``x`` above 0, ``alpha * (exp(x) - 1)`` below."""
    from ..elemwise import expm1, minimum
    x = as_tensor_variable(x)
    return maximum(x, 0) + alpha * expm1(minimum(x, 0))


SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def selu(x):
    """Scaled ELU (Klambauer et al. 2017): ``scale * elu(x, alpha)``."""
    return SELU_SCALE * elu(x, SELU_ALPHA)


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
        from ..creation import arange
        return -log(p)[arange(t.shape[0]), t] if p.type.ndim == 2 else -log(p)[t]
    return -vsum(t * log(p), axis=-1)


# -- softmax cross-entropy in one op -----------------------------------------------
# Softmax and cross-entropy as one op, with a stable gradient.
#
# ``CrossentropySoftmaxArgmax(x, y)`` takes logits ``x`` (n, k) and integer
# targets ``y`` (n,) and returns, in one pass over ``x``:
#
# - ``nll[i] = logsumexp(x[i]) - x[i, y[i]]`` (finite for any finite logits),
# - ``sm = softmax(x)`` (the gradient needs it),
# - ``am = argmax(x, axis=1)`` (accuracy, for free).
#
# Its gradient is ``CrossentropySoftmaxDx(g_nll, sm, y) = sm * g[:, None] -
# onehot(y) * g[:, None]``, which never divides by a probability. The stabilize
# pass turns ``-log(softmax(x))[arange(n), y]`` and the gradient graph that
# ``vmc.grad`` built for it into these two ops.
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

    @staticmethod
    def check_shapes(x_shape, y_shape):
        """The run-time check of every device's thunk: a target per row, and at
        least one class."""
        if x_shape[0] != y_shape[0]:
            raise ValueError(f"crossentropy_softmax: {x_shape[0]} rows of logits but "
                             f"{y_shape[0]} targets (shapes {x_shape} and {y_shape})")
        if x_shape[1] == 0:
            raise ValueError(f"crossentropy_softmax: logits of shape {x_shape} have no "
                             f"classes")

    def pullback(self, inputs, outputs, grads):
        x, y = inputs
        nll, sm, _ = outputs
        g_nll, g_sm = grads[0], grads[1]
        gx = CrossentropySoftmaxDx()(g_nll, sm, y)
        if not _is_zeros(g_sm):
            gx = gx + sm * (g_sm - vsum(g_sm * sm, axis=1, keepdims=True))
        return [gx, None]


def _is_zeros(v):
    from ..shape import Alloc
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
            from .elemwise import cast
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


# -- Theano's other nnet names ---------------------------------------------------------
def hard_sigmoid(x):
    """``clip(0.2 x + 0.5, 0, 1)``: Theano's piecewise-linear sigmoid."""
    from ..elemwise import clip
    return clip(as_tensor_variable(x) * 0.2 + 0.5, 0, 1)


def ultra_fast_sigmoid(x):
    """Theano's fast approximation of the sigmoid; vmc's sigmoid is exact and
    as fast, so this is the sigmoid itself."""
    return sigmoid(x)


def softsign(x):
    """``x / (1 + |x|)``."""
    from ..elemwise import abs as vabs
    x = as_tensor_variable(x)
    return x / (1 + vabs(x))


def softmax_with_bias(x, b):
    """``softmax(x + b)`` along the last axis (Theano's op of that name)."""
    return Softmax(-1)(as_tensor_variable(x) + b)


def crossentropy_categorical_1hot(coding_dist, true_one_of_n):
    """Per-row ``-log(coding_dist[i, true_one_of_n[i]])``."""
    return categorical_crossentropy(coding_dist, true_one_of_n)


def crossentropy_softmax_1hot(x, y_idx):
    """``(nll, softmax(x))``: the per-row cross-entropy of ``softmax(x)``
    against the labels ``y_idx``, computed stably, and the softmax."""
    return crossentropy_softmax(x, y_idx), Softmax(-1)(x)


# Theano's names: vt.nnet.conv2d, vt.nnet.abstract_conv, vt.nnet.bn.
from ..special import log_softmax  # noqa: E402,F401  (vmc's, any rank; Theano's: logsoftmax)
from . import abstract_conv, bn, conv  # noqa: E402
from .abstract_conv import conv2d, conv2d_grad_wrt_inputs, conv2d_grad_wrt_weights  # noqa: E402,F401
