"""Turning values into graph variables, and the typed constructors."""
from __future__ import annotations

import functools
import numbers

import numpy as np

from vmc.config import config
from vmc.graph.basic import Variable
from vmc.graph.type import TensorType

from .variable import TensorConstant, TensorSharedVariable, TensorVariable


def as_tensor_variable(x, name=None, ndim=None, dtype=None):
    """A tensor variable for ``x``: a variable as is, a value as a constant."""
    if isinstance(x, Variable):
        if not isinstance(x.type, TensorType):
            raise TypeError(f"expected a tensor variable, got {x!r} of type {x.type}")
        if dtype is not None and x.type.dtype != dtype:
            from .elemwise import cast
            x = cast(x, dtype)
        if ndim is not None and x.type.ndim != ndim:
            raise TypeError(f"expected a {ndim}-d tensor, got {x!r} of type {x.type}")
        return x
    if isinstance(x, (list, tuple)) and any(isinstance(e, Variable) for e in x):
        from .shape import stack
        return stack([as_tensor_variable(e) for e in x])
    return constant(x, name=name, ndim=ndim, dtype=dtype)


def constant(x, name=None, ndim=None, dtype=None):
    """A constant holding ``x``; Python floats take ``config.floatX``."""
    if dtype is None:
        dtype = _default_dtype(x)
    arr = np.asarray(x, dtype=dtype)
    if ndim is not None and arr.ndim != ndim:
        if arr.ndim < ndim:
            arr = arr.reshape((1,) * (ndim - arr.ndim) + arr.shape)
        else:
            raise ValueError(f"constant of shape {arr.shape} cannot be {ndim}-d")
    return TensorConstant(TensorType(arr.dtype, arr.shape), arr, name=name)


def _default_dtype(x):
    if isinstance(x, bool) or isinstance(x, np.bool_):
        return "bool"
    if isinstance(x, numbers.Integral) and not isinstance(x, np.integer):
        return "int64"
    if isinstance(x, float):
        return config.floatX
    a = np.asarray(x)
    if a.dtype == np.float64 and not isinstance(x, (np.ndarray, np.generic)):
        return config.floatX
    return str(a.dtype)


def weak_operand(x, other_dtypes, ndim=0):
    """The constant for a Python number in an expression with tensors of
    ``other_dtypes``: it takes their dtype when the value fits (``x + 1`` on a
    float32 ``x`` stays float32), as NumPy treats Python scalars. With
    ``ndim``, the constant has that many broadcastable dims (the rank of the
    expression: no DimShuffle node to fold away later)."""
    if isinstance(x, Variable) or not isinstance(x, (numbers.Number, np.generic)) \
            or isinstance(x, np.generic):
        return as_tensor_variable(x)
    if isinstance(x, bool):
        dtype = "bool"
    elif isinstance(x, numbers.Integral):
        floats, ints, lo, hi = _weak_rule(tuple(other_dtypes))
        if floats:
            dtype = floats
        elif ints and lo <= x <= hi:
            dtype = ints
        else:
            dtype = "int64"
    elif isinstance(x, float):
        dtype = _weak_rule(tuple(other_dtypes))[0] or config.floatX
    else:
        dtype = None
    if dtype is None:
        return constant(x, dtype=dtype, ndim=ndim or None)
    # The same few numbers recur all through a graph (``+ 1``, ``* 0.5``), and a
    # constant is immutable and already shared between graphs: make each once.
    key = (dtype, ndim, type(x), x.hex() if isinstance(x, float) else x)
    c = _weak_constants.get(key)
    if c is None:
        if len(_weak_constants) >= 4096:
            _weak_constants.clear()
        c = _weak_constants[key] = constant(x, dtype=dtype, ndim=ndim or None)
    return c


_weak_constants: dict = {}


@functools.lru_cache(maxsize=None)
def _weak_rule(other_dtypes):
    """(float dtype, int dtype, low, high) that a Python number takes among
    tensors of ``other_dtypes``: numpy's promotion of their float (and
    complex) dtypes, of their int dtypes and the range every int dtype holds.
    Cached: the promotion and dtype names cost microseconds per operand."""
    kinds = [np.dtype(d).kind for d in other_dtypes]
    floats = [d for d, k in zip(other_dtypes, kinds) if k in "fc"]
    ints = [d for d, k in zip(other_dtypes, kinds) if k in "iu"]
    lo = max((int(np.iinfo(d).min) for d in ints), default=0)
    hi = min((int(np.iinfo(d).max) for d in ints), default=0)
    return (np.result_type(*floats).name if floats else None,
            np.result_type(*ints).name if ints else None, lo, hi)


# -- constructors --------------------------------------------------------------
def tensor(dtype=None, shape=None, name=None, ndim=None):
    """A symbolic input: ``tensor(dtype="float32", shape=(None, 3))``."""
    if shape is None:
        shape = (None,) * (ndim or 0)
    dtype = config.floatX if dtype in (None, "floatX") else dtype
    return TensorVariable(TensorType(dtype, shape), name=name)


def _maker(ndim, default=None):
    def make(name=None, dtype=None, shape=None):
        dtype = dtype or default or config.floatX
        return tensor(dtype, shape if shape is not None else (None,) * ndim, name)
    return make


scalar, vector, matrix = _maker(0), _maker(1), _maker(2)
tensor3, tensor4, tensor5 = _maker(3), _maker(4), _maker(5)
row = lambda name=None, dtype=None: tensor(dtype, (1, None), name)   # noqa: E731
col = lambda name=None, dtype=None: tensor(dtype, (None, 1), name)   # noqa: E731

_PREFIX = {"b": "int8", "w": "int16", "i": "int32", "l": "int64",
           "f": "float32", "d": "float64", "c": "complex64", "z": "complex128"}
_NDIMS = {"scalar": 0, "vector": 1, "matrix": 2, "tensor3": 3, "tensor4": 4, "tensor5": 5}

for _p, _dt in _PREFIX.items():
    for _kind, _nd in _NDIMS.items():
        globals()[_p + _kind] = _maker(_nd, _dt)
    globals()[_p + "row"] = (lambda dt: lambda name=None: tensor(dt, (1, None), name))(_dt)
    globals()[_p + "col"] = (lambda dt: lambda name=None: tensor(dt, (None, 1), name))(_dt)


def _plural(single):
    def make(*names, dtype=None):
        if len(names) == 1 and isinstance(names[0], int):
            names = [None] * names[0]
        elif len(names) == 1 and isinstance(names[0], str) and "," in names[0]:
            names = [n.strip() for n in names[0].split(",")]
        return [single(n, dtype=dtype) if dtype else single(n) for n in names]
    return make


scalars, vectors, matrices = _plural(scalar), _plural(vector), _plural(matrix)
tensor3s, tensor4s = _plural(tensor3), _plural(tensor4)
for _p in _PREFIX:
    for _kind, _plural_name in (("scalar", "scalars"), ("vector", "vectors"),
                                ("matrix", "matrices")):
        globals()[_p + _plural_name] = _plural(globals()[_p + _kind])


# Constructors ``shared`` tries first, newest first: each returns a SharedVariable
# or None (not mine). A device backend adds one (``vmc/__init__.py`` wires vmc.gpu's:
# float data lives on ``config.device``), so this room never imports a backend.
SHARED_CONSTRUCTORS = []


def shared(value, name=None, strict=False, allow_downcast=None, borrow=False, shape=None,
           broadcastable=None):
    """A shared tensor variable holding ``value`` (copied unless ``borrow``).

    Its static shape is unknown in every dim, except where ``shape`` says
    otherwise (1 makes a dim broadcastable), so ``set_value`` may change the
    size later, as in Theano. Theano's arguments mean what they meant there:
    ``broadcastable`` (a bool per dim; True is ``shape`` 1), ``strict`` (the
    value must already be a numpy array: no conversion). ``allow_downcast`` is
    accepted for Theano's signature; ``set_value`` always converts to the
    variable's dtype, as Theano did with ``allow_downcast=True``.
    """
    if strict and not isinstance(value, np.ndarray):
        raise TypeError(f"shared(strict=True): expected a numpy array, got "
                        f"{type(value).__name__}")
    if broadcastable is not None:
        ndim = np.ndim(value) if not hasattr(value, "ndim") else value.ndim
        if shape is not None:
            raise TypeError("shared: give shape or broadcastable, not both")
        if len(broadcastable) != ndim:
            raise ValueError(f"shared: broadcastable {tuple(broadcastable)} has "
                             f"{len(broadcastable)} dims, the value {ndim}")
        shape = tuple(1 if b else None for b in broadcastable)
    for ctor in reversed(SHARED_CONSTRUCTORS):
        v = ctor(value, name=name, borrow=borrow, shape=shape)
        if v is not None:
            return v
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"shared: cannot hold a value of type {type(value).__name__}")
    if shape is None:
        shape = (None,) * arr.ndim
    return TensorSharedVariable(TensorType(arr.dtype, shape), value, name=name, borrow=borrow)


# What ``from .basic import *`` gives the vocabulary: the functions and the
# generated constructors, not this module's imports.
__all__ = sorted(n for n, v in globals().items()
                 if not n.startswith("_") and callable(v) and getattr(v, "__module__", None)
                 == __name__ or n in ("as_tensor_variable",))
