"""Tensor variables: the NumPy-like operators and methods on graph variables.

``==`` stays identity (variables are dict keys); use ``vt.eq`` for the
elementwise comparison, as in Theano.
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Constant, SharedVariable, Variable
from vmc.graph.type import TensorType


def _t():
    # The vocabulary is imported lazily: it imports this module.
    import vmc.tensor as vt
    return vt


class _TensorOps:
    __slots__ = ()
    # numpy defers to our reflected operators (``array + x``, ``array @ x``)
    # instead of treating the variable as an object scalar.
    __array_ufunc__ = None

    # -- metadata ------------------------------------------------------------
    @property
    def ndim(self):
        return self.type.ndim

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def broadcastable(self):
        return self.type.broadcastable

    @property
    def shape(self):
        return _t().shape(self)

    @property
    def size(self):
        return _t().prod(self.shape)

    @property
    def T(self):
        return _t().transpose(self)

    def _as_like(self, value):
        return _t().as_tensor_variable(value, dtype=self.type.dtype)

    # -- arithmetic ----------------------------------------------------------
    def __add__(self, o): return _t().add(self, o)
    def __radd__(self, o): return _t().add(o, self)
    def __sub__(self, o): return _t().sub(self, o)
    def __rsub__(self, o): return _t().sub(o, self)
    def __mul__(self, o): return _t().mul(self, o)
    def __rmul__(self, o): return _t().mul(o, self)
    def __truediv__(self, o): return _t().true_div(self, o)
    def __rtruediv__(self, o): return _t().true_div(o, self)
    def __floordiv__(self, o): return _t().int_div(self, o)
    def __rfloordiv__(self, o): return _t().int_div(o, self)
    def __mod__(self, o): return _t().mod(self, o)
    def __rmod__(self, o): return _t().mod(o, self)
    def __pow__(self, o): return _t().pow(self, o)
    def __rpow__(self, o): return _t().pow(o, self)
    def __neg__(self): return _t().neg(self)
    def __pos__(self): return self
    def __abs__(self): return _t().abs(self)
    def __matmul__(self, o): return _t().matmul(self, o)
    def __rmatmul__(self, o): return _t().matmul(o, self)

    # -- comparisons and logic -----------------------------------------------
    def __lt__(self, o): return _t().lt(self, o)
    def __le__(self, o): return _t().le(self, o)
    def __gt__(self, o): return _t().gt(self, o)
    def __ge__(self, o): return _t().ge(self, o)
    def __and__(self, o): return _t().and_(self, o)
    def __rand__(self, o): return _t().and_(o, self)
    def __or__(self, o): return _t().or_(self, o)
    def __ror__(self, o): return _t().or_(o, self)
    def __xor__(self, o): return _t().xor(self, o)
    def __rxor__(self, o): return _t().xor(o, self)
    def __invert__(self): return _t().invert(self)

    def __bool__(self):
        # As in Theano: a variable is true (``if W:``, ``if not persistent:``
        # test for None), but the result of a symbolic comparison or its logic
        # has no truth value, which catches ``a < b < c`` and ``if x > 0:``.
        node = self.owner
        if node is not None and self.type.dtype == "bool" and _is_elemwise(node.op):
            raise TypeError("the result of a symbolic comparison has no truth value; use "
                            "vmc.ifelse.ifelse for a lazy conditional or vt.switch for an "
                            "elementwise one")
        return True

    def __iter__(self):
        # A vector of known length (``x.shape``) iterates over its entries, as
        # in Theano (``for i, s in enumerate(x.shape)``); anything else cannot.
        n = self.type.shape[0] if self.type.ndim == 1 else None
        if n is None:
            raise TypeError("cannot iterate over a symbolic tensor (only over a vector of "
                            "static length, such as x.shape); index it, or use vmc.scan. "
                            "Maybe builtin sum() or max() was meant to be vt.sum or vt.max?")
        return iter([self[i] for i in range(n)])

    def __len__(self):
        raise TypeError("len() of a symbolic tensor is unknown; use x.shape[0]")

    # -- indexing ------------------------------------------------------------
    def __getitem__(self, idx):
        return _t().getitem(self, idx)

    # -- methods -------------------------------------------------------------
    def sum(self, axis=None, dtype=None, keepdims=False, acc_dtype=None):
        return _t().sum(self, axis=axis, dtype=dtype, keepdims=keepdims, acc_dtype=acc_dtype)

    def mean(self, axis=None, dtype=None, keepdims=False, acc_dtype=None):
        return _t().mean(self, axis=axis, dtype=dtype, keepdims=keepdims, acc_dtype=acc_dtype)

    def var(self, axis=None, ddof=0, keepdims=False, corrected=False):
        return _t().var(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, ddof=0, keepdims=False, corrected=False):
        return _t().std(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def norm(self, L, axis=None, keepdims=False):
        """The ``L``-norm over ``axis`` (Theano's method): ``sum(|x|^L)^(1/L)``."""
        if L == 0:
            raise NotImplementedError("norm: L=0 is not a norm")
        if L == 1:
            return _t().sum(_t().abs(self), axis=axis, keepdims=keepdims)
        if L == 2:
            return _t().sqrt(_t().sum(_t().sqr(self), axis=axis, keepdims=keepdims))
        return _t().sum(_t().abs(self) ** L, axis=axis, keepdims=keepdims) ** (1.0 / L)

    def max(self, axis=None, keepdims=False):
        return _t().max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return _t().min(self, axis=axis, keepdims=keepdims)

    def prod(self, axis=None, dtype=None, keepdims=False, acc_dtype=None):
        return _t().prod(self, axis=axis, dtype=dtype, keepdims=keepdims, acc_dtype=acc_dtype)

    def argmax(self, axis=None, keepdims=False):
        return _t().argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False):
        return _t().argmin(self, axis=axis, keepdims=keepdims)

    def any(self, axis=None, keepdims=False):
        return _t().any(self, axis=axis, keepdims=keepdims)

    def all(self, axis=None, keepdims=False):
        return _t().all(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape, ndim=None):
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        return _t().reshape(self, shape, ndim=ndim)

    def flatten(self, ndim=1):
        return _t().flatten(self, ndim)

    def dimshuffle(self, *pattern):
        if len(pattern) == 1 and isinstance(pattern[0], (list, tuple)):
            pattern = pattern[0]
        return _t().dimshuffle(self, pattern)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = axes[0]
        return _t().transpose(self, axes or None)

    def exp(self): return _t().exp(self)
    def log(self): return _t().log(self)
    def sqrt(self): return _t().sqrt(self)
    def tanh(self): return _t().tanh(self)
    def sin(self): return _t().sin(self)
    def cos(self): return _t().cos(self)
    def floor(self): return _t().floor(self)
    def ceil(self): return _t().ceil(self)

    def astype(self, dtype):
        return _t().cast(self, dtype)

    def dot(self, other):
        return _t().dot(self, other)

    def clip(self, lo, hi):
        return _t().clip(self, lo, hi)

    def squeeze(self, axis=None):
        return _t().squeeze(self, axis)

    def zeros_like(self, dtype=None):
        return _t().zeros_like(self, dtype=dtype)

    def ones_like(self, dtype=None):
        return _t().ones_like(self, dtype=dtype)

    def nonzero(self):
        return _t().nonzero(self)

    def repeat(self, repeats, axis=None):
        return _t().repeat(self, repeats, axis)

    def ravel(self):
        return _t().flatten(self)

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return _t().diagonal(self, offset, axis1, axis2)

    def trace(self):
        return _t().trace(self)

    def nonzero_values(self):
        return _t().nonzero_values(self)

    def swapaxes(self, axis1, axis2):
        order = list(range(self.type.ndim))
        order[axis1], order[axis2] = order[axis2], order[axis1]
        return _t().dimshuffle(self, order)

    def round(self, mode=None):
        return _t().round(self)

    def fill(self, value):
        """An array of ``self``'s shape filled with ``value`` (Theano's method)."""
        return _t().full_like(self, value)

    def sort(self, axis=-1, kind="quicksort", order=None):
        return _t().sort(self, axis, kind, order)

    def argsort(self, axis=-1, kind="quicksort", order=None):
        return _t().argsort(self, axis, kind, order)

    def cumsum(self, axis=None):
        return _t().cumsum(self, axis)

    def cumprod(self, axis=None):
        return _t().cumprod(self, axis)

    def take(self, indices, axis=None):
        if axis is None:
            return _t().flatten(self)[indices]
        return self[(slice(None),) * (axis % self.type.ndim) + (indices,)]

    def copy(self, name=None):
        out = _t().tensor_copy(self)
        out.name = name
        return out

    # -- evaluation ----------------------------------------------------------
    def eval(self, inputs_to_values=None, **kwargs):
        """The value of this variable given ``{input variable: value}``: a
        function is compiled on the first call for a set of inputs and kept
        in this variable's tag, so it lives exactly as long as the variable
        (a module-level cache would keep every graph ever evaluated)."""
        import vmc
        values = inputs_to_values or {}
        keys = tuple(values)
        cache = self.tag.__dict__.setdefault("eval_functions", {})
        key = (keys, tuple(sorted(kwargs.items())))
        f = cache.get(key)
        if f is None:
            f = cache[key] = vmc.function(list(keys), self, on_unused_input="ignore", **kwargs)
        return f(*[values[k] for k in keys])


def _is_elemwise(op):
    from .elemwise import Elemwise
    return isinstance(op, Elemwise)


class TensorVariable(_TensorOps, Variable):
    __slots__ = ()


class TensorConstant(_TensorOps, Constant):
    __slots__ = ()


class TensorSharedVariable(_TensorOps, SharedVariable):
    __slots__ = ()


TensorType.variable_class = TensorVariable
TensorType.constant_class = TensorConstant
