"""2-d pooling over the last two dims, with Theano's semantics
(``theano.tensor.signal.pool``).

``mode`` is 'max', 'sum', 'average_inc_pad' (the divisor counts the zero
padding) or 'average_exc_pad' (it does not). With ``ignore_border=False`` the
last windows may hang over the border: they are clipped to the input, and
their average divides by what is left. A max window never sees the padding.
Output rows: ``(H + 2 pad - ws) // stride + 1`` when ignoring the border,
else ``(H - 1) // stride + 1`` (stride >= ws) or
``max(0, (H - 1 - ws + stride) // stride) + 1``.

Ops: ``Pool``, its gradients ``MaxPoolGrad`` and ``AveragePoolGrad``, and
``DownsampleFactorMaxGradGrad`` (the max gradient's own gradient w.r.t. the
output gradient, and the max pool's forward-mode rule).
"""
from __future__ import annotations

from vmc.graph.basic import Apply, Op, Variable
from vmc.graph.type import TensorType

from ..basic import as_tensor_variable

__all__ = ["pool_2d", "Pool", "MaxPoolGrad", "AveragePoolGrad",
           "DownsampleFactorMaxGradGrad", "pool_output_length"]

MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")


def pool_output_length(n, ws, stride, pad, ignore_border):
    if n is None:
        return None
    if ignore_border:
        return (n + 2 * pad - ws) // stride + 1
    if stride >= ws:
        return (n - 1) // stride + 1
    return max(0, (n - 1 - ws + stride) // stride) + 1


def _pair(v, what):
    if isinstance(v, int):
        v = (v, v)
    if isinstance(v, Variable) or any(isinstance(a, Variable) for a in v):
        # ValueError, as Theano versions without symbolic sizes raised (Lasagne
        # then falls back to an implementation that needs none)
        raise ValueError(f"pool_2d: {what} must be ints known when the graph is built, "
                         f"got the symbolic {v!r}")
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ValueError(f"pool_2d: {what} must be a pair of ints, got {v}")
    return v


class _PoolBase(Op):
    __props__ = ("ws", "ignore_border", "stride", "pad", "mode")

    def __init__(self, ws, ignore_border=True, stride=None, pad=(0, 0), mode="max"):
        self.ws = _pair(ws, "ws")
        self.stride = self.ws if stride is None else _pair(stride, "stride")
        self.pad = _pair(pad, "pad")
        self.ignore_border = bool(ignore_border)
        if mode == "average":
            mode = "average_inc_pad"
        if mode not in MODES:
            raise ValueError(f"pool_2d: mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        if min(self.ws) < 1 or min(self.stride) < 1 or min(self.pad) < 0:
            raise ValueError(f"pool_2d: ws {self.ws} and stride {self.stride} must be >= 1, "
                             f"pad {self.pad} >= 0")
        if self.pad != (0, 0) and not self.ignore_border:
            raise NotImplementedError("pool_2d: padding works only with ignore_border=True")
        if self.pad[0] >= self.ws[0] or self.pad[1] >= self.ws[1]:
            raise ValueError(f"pool_2d: pad {self.pad} must be smaller than ws {self.ws}")

    def params(self):
        return dict(ws=self.ws, ignore_border=self.ignore_border, stride=self.stride,
                    pad=self.pad, mode=self.mode)

    def out_shape(self, shape):
        return tuple(shape[:-2]) + tuple(
            pool_output_length(n, w, s, p, self.ignore_border)
            for n, w, s, p in zip(shape[-2:], self.ws, self.stride, self.pad))

    def _check(self, x):
        x = as_tensor_variable(x)
        if x.type.ndim < 2:
            raise TypeError(f"pool_2d: the input must have at least 2 dims, got {x.type}")
        return x


def _static(shape):
    return tuple(None if s == 1 else s for s in shape)


class Pool(_PoolBase):
    """Pool the last two dims of ``x``."""

    def make_node(self, x):
        x = self._check(x)
        return Apply(self, [x], [TensorType(x.type.dtype,
                                            _static(self.out_shape(x.type.shape)))
                                 .make_variable()])

    def infer_shape(self, node, shapes):
        (s,) = shapes
        return [tuple(s[:-2]) + tuple(_symbolic_len(n, w, st, p, self.ignore_border)
                                      for n, w, st, p in zip(s[-2:], self.ws, self.stride,
                                                             self.pad))]

    def pullback(self, inputs, outputs, grads):
        (x,), (out,), (gz,) = inputs, outputs, grads
        if self.mode == "max":
            return [MaxPoolGrad(**self.params())(x, out, gz)]
        return [AveragePoolGrad(**self.params())(x, gz)]

    def pushforward(self, inputs, outputs, tangents):
        (x,), (out,), (t,) = inputs, outputs, tangents
        if self.mode == "max":
            return [DownsampleFactorMaxGradGrad(**self.params())(x, out, t)]
        return [self(t)]


class MaxPoolGrad(_PoolBase):
    """``(x, max pool of x, output gradient) -> input gradient``: each window's
    gradient goes to the elements equal to its maximum (all of them, as in
    Theano)."""

    def make_node(self, x, out, gz):
        x, out, gz = self._check(x), self._check(out), self._check(gz)
        return Apply(self, [x, out, gz], [x.type.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        x, out, gz = inputs
        (g,) = grads
        return [x.zeros_like(), out.zeros_like(),
                DownsampleFactorMaxGradGrad(**self.params())(x, out, g)]

    def pushforward(self, inputs, outputs, tangents):
        x, out, gz = inputs
        t = tangents[2]
        return [None if t is None else self(x, out, t)]


class AveragePoolGrad(_PoolBase):
    """``(x, output gradient) -> input gradient`` of the sum and average modes."""

    def make_node(self, x, gz):
        x, gz = self._check(x), self._check(gz)
        return Apply(self, [x, gz], [x.type.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        x, gz = inputs
        (g,) = grads
        return [x.zeros_like(), Pool(**self.params())(g)]

    def pushforward(self, inputs, outputs, tangents):
        x, gz = inputs
        t = tangents[1]
        return [None if t is None else self(x, t)]


class DownsampleFactorMaxGradGrad(_PoolBase):
    """``(x, max pool of x, g of x's shape) -> (pool-shaped)``: each window's
    sum of ``g`` over the elements equal to its maximum."""

    def make_node(self, x, out, g):
        x, out, g = self._check(x), self._check(out), self._check(g)
        return Apply(self, [x, out, g], [out.type.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[1]]

    def pullback(self, inputs, outputs, grads):
        x, out, g = inputs
        (gg,) = grads
        return [x.zeros_like(), out.zeros_like(), MaxPoolGrad(**self.params())(x, out, gg)]

    def pushforward(self, inputs, outputs, tangents):
        x, out, g = inputs
        t = tangents[2]
        return [None if t is None else self(x, out, t)]


def _symbolic_len(n, ws, stride, pad, ignore_border):
    from ..elemwise import maximum
    if ignore_border:
        return (n + 2 * pad - ws) // stride + 1
    if stride >= ws:
        return (n - 1) // stride + 1
    return maximum(0, (n - 1 - ws + stride) // stride) + 1


def pool_2d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0), mode="max",
            ds=None, st=None, padding=None):
    """Theano's ``pool_2d``: pool the last two dims of ``input`` with windows
    ``ws`` every ``stride`` (default ``ws``), after zero padding ``pad``.
    ``ds``, ``st`` and ``padding`` are Theano 0.8's names for ``ws``, ``stride``
    and ``pad``. ``ignore_border`` defaults to True (Theano warned and took
    False)."""
    if ds is not None:
        if ws is not None:
            raise ValueError("pool_2d: give ws or ds, not both")
        ws = ds
    if ws is None:
        raise TypeError("pool_2d: ws (the window shape) is required")
    stride = st if stride is None else stride
    pad = padding if padding is not None else pad
    if ignore_border is None:
        ignore_border = True
    return Pool(ws, ignore_border, stride, pad, mode)(input)
