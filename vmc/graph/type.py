"""Types: what a variable may hold. Immutable and hashable."""
from __future__ import annotations

import numpy as np

# The kinds of dtype, for casting rules and messages.
FLOAT_DTYPES = ("float16", "float32", "float64")
COMPLEX_DTYPES = ("complex64", "complex128")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
ALL_DTYPES = ("bool",) + INT_DTYPES + FLOAT_DTYPES + COMPLEX_DTYPES


def _dtype_name(dtype):
    """The canonical name ("float64") of anything numpy accepts as a dtype."""
    try:
        return _DTYPE_NAMES[dtype]
    except (KeyError, TypeError):
        pass
    name = str(np.dtype(dtype))
    if name not in ALL_DTYPES:
        raise TypeError(f"unsupported dtype {name!r}")
    if isinstance(dtype, (str, type, np.dtype)):
        _DTYPE_NAMES[dtype] = name
    return name


def _shape_entry(s):
    """One static shape entry: None (unknown), or a length. A bool is an entry
    of Theano's ``broadcastable`` pattern: True is length 1, False unknown, so
    ``TensorType("float64", (False, True))`` is a column, as in Theano."""
    if isinstance(s, (bool, np.bool_)):
        return 1 if s else None
    return None if s is None else int(s)


_DTYPE_NAMES = {}
_TYPES = {}   # (class, dtype, shape) as given or canonical -> the one instance


class Type:
    """Base of all types. A type checks and converts values with ``filter``."""
    __slots__ = ()
    # The Variable subclass made for this type; the tensor package registers its own.
    variable_class = None
    constant_class = None

    def filter(self, value, name="input", allow_downcast=False):
        raise NotImplementedError

    def make_variable(self, name=None):
        return self.variable_class(self, None, None, name)

    def __call__(self, name=None):
        """A new variable of this type, as in Theano: ``TensorType("float32", (None, 3))("x")``
        or ``x.type()`` in a ``make_node``."""
        return self.make_variable(name)


class TensorType(Type):
    """``TensorType(dtype, shape)``: an n-d array of ``dtype``.

    Each shape entry is ``1`` (known to be 1: broadcastable), an int (known
    length) or ``None`` (unknown). Only a dim known to be 1 broadcasts.
    Theano's ``TensorType(dtype, broadcastable)`` works too: a pattern of
    bools (``(False, True)``) means ``(None, 1)``.
    """
    __slots__ = ("dtype", "shape", "_hash")

    def __new__(cls, dtype, shape=(), broadcastable=None):
        # Types are immutable, so equal types can be one object: building a
        # node then costs a dict lookup instead of normalizing dtype and shape
        # (numpy's dtype-to-name conversion alone is microseconds per node).
        if broadcastable is None:
            try:
                t = _TYPES[(cls, dtype, shape)]
                # False == 0 and hashes alike: a zero length and Theano's
                # "not broadcastable" must not share the cached type.
                if 0 not in shape:
                    return t
            except (KeyError, TypeError):   # TypeError: an unhashable shape (a list)
                pass
        else:
            shape = broadcastable
        name = _dtype_name(dtype)
        norm = tuple(_shape_entry(s) for s in shape)
        if any(s is not None and s < 0 for s in norm):
            raise ValueError(f"static shape entries must be >= 0 or None, got {norm}")
        self = _TYPES.get((cls, name, norm))
        if self is None:
            self = object.__new__(cls)
            object.__setattr__(self, "dtype", name)
            object.__setattr__(self, "shape", norm)
            object.__setattr__(self, "_hash", hash((TensorType, name, norm)))
            _TYPES[(cls, name, norm)] = self
        if type(shape) is tuple and 0 not in shape:
            try:
                _TYPES[(cls, dtype, shape)] = self
            except TypeError:
                pass
        return self

    def __setattr__(self, name, value):
        raise AttributeError("TensorType is immutable")

    def __reduce__(self):
        return (TensorType, (self.dtype, self.shape))

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def broadcastable(self):
        return tuple(s == 1 for s in self.shape)

    @property
    def numpy_dtype(self):
        return np.dtype(self.dtype)

    def clone(self, dtype=None, shape=None):
        return TensorType(self.dtype if dtype is None else dtype,
                          self.shape if shape is None else shape)

    def __eq__(self, other):
        return (type(other) is TensorType and self.dtype == other.dtype
                and self.shape == other.shape)

    def __hash__(self):
        return self._hash

    def is_super(self, other):
        """True when every value of ``other`` is a valid value of ``self``."""
        return (isinstance(other, TensorType) and self.dtype == other.dtype
                and self.ndim == other.ndim
                and all(s is None or s == o for s, o in zip(self.shape, other.shape)))

    def __repr__(self):
        shape = ", ".join("?" if s is None else str(s) for s in self.shape)
        if self.ndim == 1:
            shape += ","
        return f"TensorType({self.dtype}, shape=({shape}))"

    def __str__(self):
        names = {0: "Scalar", 1: "Vector", 2: "Matrix"}
        shape = ", ".join("?" if s is None else str(s) for s in self.shape)
        return f"{names.get(self.ndim, 'Tensor')}({self.dtype}, shape=({shape}))"

    def filter(self, value, name="input", allow_downcast=False):
        """Check and convert a call argument; raise TypeError naming ``name``."""
        if isinstance(value, np.ndarray) and value.dtype == self.numpy_dtype:
            arr = value
        else:
            arr = self._convert(value, name, allow_downcast)
        if arr.ndim != self.ndim:
            raise TypeError(f"{name}: expected a {self.ndim}-d array ({self}), "
                            f"got a {arr.ndim}-d array of shape {arr.shape}")
        for d, (s, a) in enumerate(zip(self.shape, arr.shape)):
            if s is not None and s != a:
                raise TypeError(f"{name}: expected shape {self._shape_str()} ({self}), got "
                                f"shape {arr.shape} (dim {d} is {a}, expected {s})")
        return arr

    def _shape_str(self):
        inner = ", ".join("?" if s is None else str(s) for s in self.shape)
        return f"({inner},)" if self.ndim == 1 else f"({inner})"

    def _convert(self, value, name, allow_downcast):
        target = self.numpy_dtype
        if isinstance(value, np.ndarray) or np.isscalar(value) or isinstance(value, np.generic):
            src = np.asarray(value)
        else:
            try:
                src = np.asarray(value)
            except Exception as e:
                raise TypeError(f"{name}: cannot convert {type(value).__name__} to {self}: {e}")
        if src.dtype == target:
            return src
        if src.dtype == object:
            src = self._from_big_ints(src, name)
        if src.dtype == object or src.dtype.kind in "USVMm":
            raise TypeError(f"{name}: expected {self}, got "
                            f"{type(value).__name__} of dtype {src.dtype}")
        if np.can_cast(src.dtype, target, "safe"):
            return src.astype(target)
        if allow_downcast:
            return self._downcast(src, name)
        # Python scalars and lists (not arrays) may be downcast when exact,
        # e.g. 1.0 into float32 or 3 into int32, as Theano allowed.
        if not isinstance(value, np.ndarray) and not isinstance(value, np.generic):
            with np.errstate(invalid="ignore", over="ignore"):
                cast = src.astype(target)
                if np.array_equal(cast.astype(src.dtype), src):
                    return cast
        raise TypeError(
            f"{name}: expected {self}, got dtype {src.dtype}; converting would lose "
            f"precision. Pass an array of dtype {target}, or compile with "
            f"allow_input_downcast=True.")

    def _from_big_ints(self, src, name):
        """Python ints beyond int64 (numpy holds them as objects) as floats
        when this type holds floats; ``src`` unchanged otherwise."""
        if self.numpy_dtype.kind not in "fc" or not all(
                type(v) is int for v in src.reshape(-1).tolist()):
            return src
        try:
            return src.astype(self.numpy_dtype)
        except OverflowError:
            raise TypeError(f"{name}: an integer too large for {self.dtype} "
                            f"(expected {self})") from None

    def _downcast(self, src, name):
        """``src`` cast to this dtype as ``allow_input_downcast`` permits:
        precision may go (3.7 -> 3, float64 -> float32), but a value that
        does not fit (out of range, nan or inf for an integer type, an overflow
        to inf) raises TypeError instead of wrapping."""
        target = self.numpy_dtype
        with np.errstate(invalid="ignore", over="ignore"):
            cast = src.astype(target)
        if src.size == 0:
            return cast
        if target.kind in "iub":
            info = np.iinfo(target) if target.kind != "b" else None
            lo, hi = (0, 1) if info is None else (info.min, info.max)
            real = src.real if src.dtype.kind == "c" else src
            if src.dtype.kind in "fc":
                # float(hi) may round up to hi + 1: compare against the
                # exact power of two above it
                bad = ~np.isfinite(real) | (real < float(lo)) | (real >= float(hi) + 1)
            else:
                bad = (real < lo) | (real > hi)
            if src.dtype.kind == "c":
                bad = bad | (src.imag != 0)
        elif target.kind == "f":
            bad = np.isfinite(src) & ~np.isfinite(cast)
        else:
            bad = np.zeros(src.shape, bool)
        if np.any(bad):
            first = src[bad].reshape(-1)[0].item()
            raise TypeError(f"{name}: the value {first!r} does not fit in {self.dtype} "
                            f"(expected {self}); allow_input_downcast may lose precision, "
                            f"never wrap a value")
        return cast

    def values_eq(self, a, b):
        return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
