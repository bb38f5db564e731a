"""Shape ops: shape, reshape, alloc, join and friends."""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Apply, Constant, Op, Variable
from vmc.graph.type import TensorType

from .basic import as_tensor_variable, constant
from .elemwise import cast, dimshuffle, insert_axes


class Shape(Op):
    """The shape of ``x`` as an int64 vector."""
    __props__ = ()

    def make_node(self, x):
        x = as_tensor_variable(x)
        return Apply(self, [x], [TensorType("int64", (x.type.ndim,)).make_variable()])

    def infer_shape(self, node, shapes):
        return [(node.inputs[0].type.ndim,)]

    def pullback(self, inputs, outputs, grads):
        return [None]


class ShapeI(Op):
    """``x.shape[i]`` as an int64 scalar."""
    __props__ = ("i",)

    def __init__(self, i):
        self.i = int(i)

    def make_node(self, x):
        x = as_tensor_variable(x)
        if not 0 <= self.i < x.type.ndim:
            raise ValueError(f"shape_i: dim {self.i} out of range for {x.type}")
        return Apply(self, [x], [TensorType("int64", ()).make_variable()])

    def infer_shape(self, node, shapes):
        return [()]

    def pullback(self, inputs, outputs, grads):
        return [None]

    def __str__(self):
        return f"Shape_i{{{self.i}}}"


def shape(x):
    return Shape()(as_tensor_variable(x))


def shape_i(x, i):
    """``x.shape[i]``: a constant when the static shape knows it."""
    x = as_tensor_variable(x)
    s = x.type.shape[i]
    if s is not None:
        return constant(s, dtype="int64")
    return ShapeI(i % x.type.ndim)(x)


def shape_tuple(x):
    x = as_tensor_variable(x)
    return tuple(shape_i(x, d) for d in range(x.type.ndim))


def _static_int(v):
    """The int value of a scalar variable when it is a constant, else None."""
    if isinstance(v, Constant) and v.data.ndim == 0:
        return int(v.data)
    return None


class MakeVector(Op):
    """A vector from scalars."""
    __props__ = ("dtype",)

    def __init__(self, dtype="int64"):
        self.dtype = dtype

    def make_node(self, *scalars):
        scalars = [cast(as_tensor_variable(s), self.dtype) for s in scalars]
        if any(s.type.ndim != 0 for s in scalars):
            raise TypeError("MakeVector takes scalars")
        return Apply(self, scalars, [TensorType(self.dtype, (len(scalars),)).make_variable()])

    def infer_shape(self, node, shapes):
        return [(len(node.inputs),)]

    def pullback(self, inputs, outputs, grads):
        (g,) = grads
        return [g[i] for i in range(len(inputs))]


def as_shape_vector(shape):
    """A tuple/list of ints and scalar variables, or an int vector variable,
    as ``(int64 vector variable, static shape tuple)``."""
    if isinstance(shape, Variable):
        shape = as_tensor_variable(shape)
        if shape.owner is not None and isinstance(shape.owner.op, Shape):
            return shape, shape.owner.inputs[0].type.shape     # reshape(g, x.shape)
        if shape.type.ndim == 0:
            return as_shape_vector([shape])
        if shape.type.ndim != 1:
            raise TypeError(f"a shape must be a vector, got {shape.type}")
        n = shape.type.shape[0]
        if n is None:
            raise ValueError("a shape vector must have a known length")
        if isinstance(shape, Constant):
            return cast(shape, "int64"), tuple(int(s) for s in shape.data)
        return cast(shape, "int64"), (None,) * n
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    items = [as_tensor_variable(s) if isinstance(s, Variable) else int(s) for s in shape]
    static = tuple(_static_int(s) if isinstance(s, Variable) else s for s in items)
    if all(isinstance(s, int) for s in items):
        return constant(np.array(items, dtype="int64")), static
    return MakeVector("int64")(*[s if isinstance(s, Variable) else constant(s, dtype="int64")
                                 for s in items]), static


class Reshape(Op):
    """``x`` reshaped to the int64 vector ``shape`` (``-1`` infers one dim)."""
    __props__ = ("ndim",)
    view_map = {0: [0]}

    def __init__(self, ndim):
        self.ndim = int(ndim)

    def make_node(self, x, shp, static=None):
        x = as_tensor_variable(x)
        if static is None:
            static = (None,) * self.ndim
        static = tuple(None if (s is None or s < 0) else s for s in static)
        if None not in static and None not in x.type.shape:
            if int(np.prod(static)) != int(np.prod(x.type.shape)):
                raise ValueError(f"reshape: cannot reshape {x.type} to {static}")
        return Apply(self, [x, shp], [TensorType(x.type.dtype, static).make_variable()])

    def infer_shape(self, node, shapes):
        from .elemwise import eq, switch
        from .math import prod
        from .subtensor import getitem
        x, shp = node.inputs
        out, size = [], None
        for d in range(self.ndim):
            s = node.outputs[0].type.shape[d]
            if s is not None:
                out.append(constant(s, dtype="int64"))
                continue
            if size is None:
                size = prod(shapes[0]) if shapes[0] else constant(1, dtype="int64")
            # A -1 entry stands for size / (product of the others) = size // -prod(shp).
            e = getitem(shp, d)
            out.append(switch(eq(e, -1), size // -prod(shp), e))
        return [tuple(out)]

    def pullback(self, inputs, outputs, grads):
        x, _ = inputs
        return [reshape(grads[0], shape(x), ndim=x.type.ndim), None]

    def __str__(self):
        return f"Reshape{{{self.ndim}}}"


def reshape(x, newshape, ndim=None):
    x = as_tensor_variable(x)
    vec, static = as_shape_vector(newshape)
    if ndim is not None and ndim != len(static):
        raise ValueError(f"reshape: ndim={ndim} but the shape has {len(static)} entries")
    if static == x.type.shape and None not in static:
        return x
    known = [s for s in static if s is not None and s >= 0]
    if static.count(-1) == 1 and None not in static and None not in x.type.shape:
        rest = int(np.prod(known)) if known else 1
        static = tuple(int(np.prod(x.type.shape)) // rest if s == -1 else s for s in static)
    return Reshape(len(static)).make_node(x, vec, static).outputs[0]


def flatten(x, ndim=1):
    """Keep the first ``ndim - 1`` dims, flatten the rest into one."""
    x = as_tensor_variable(x)
    if ndim < 1 or ndim > max(x.type.ndim, 1):
        raise ValueError(f"flatten: ndim={ndim} is invalid for {x.type}")
    if x.type.ndim == ndim:
        return x
    lead = [shape_i(x, d) for d in range(ndim - 1)]
    return reshape(x, lead + [-1])


class Alloc(Op):
    """A new array of shape ``dims`` filled by broadcasting ``value`` into it."""
    __props__ = ()

    def make_node(self, value, *dims):
        value = as_tensor_variable(value)
        dims = [cast(as_tensor_variable(d), "int64") for d in dims]
        if value.type.ndim > len(dims):
            raise TypeError(f"alloc: value {value.type} has more dims than the shape")
        static = []
        vshape = (None,) * (len(dims) - value.type.ndim) + value.type.shape
        for d, vs in zip(dims, vshape):
            s = _static_int(d)
            static.append(s if s is not None else (vs if vs not in (None, 1) else None))
        return Apply(self, [value] + dims,
                     [TensorType(value.type.dtype, tuple(static)).make_variable()])

    def infer_shape(self, node, shapes):
        return [tuple(node.inputs[1:])]

    def pullback(self, inputs, outputs, grads):
        from .elemwise import _unbroadcast
        value, (g,) = inputs[0], grads
        n_lead = g.type.ndim - value.type.ndim
        from .math import sum as vsum
        if n_lead:
            g = vsum(g, axis=tuple(range(n_lead)))
        axes = tuple(d for d, s in enumerate(value.type.shape) if s == 1)
        if axes:
            g = vsum(g, axis=axes, keepdims=True)
        return [_unbroadcast(g, value)] + [None] * (len(inputs) - 1)


def alloc(value, *dims):
    return Alloc()(value, *dims)


def alloc_like(value, like):
    """``value`` broadcast to the shape (and static shape) of ``like``."""
    value = as_tensor_variable(value)
    out = Alloc()(value, *shape_tuple(like))
    if out.type.shape != like.type.shape:
        out = specify_like(out, like)
    return out


def specify_like(x, like):
    """``x`` with the static shape of ``like`` (their runtime shapes agree)."""
    return SpecifyShape(like.type.shape)(x)


class SpecifyShape(Op):
    """Asserts a static shape: returns ``x``, raising if its shape differs."""
    __props__ = ("shape",)
    view_map = {0: [0]}

    def __init__(self, shape):
        self.shape = tuple(shape)

    def make_node(self, x):
        x = as_tensor_variable(x)
        shape = tuple(a if a is not None else b for a, b in zip(self.shape, x.type.shape))
        return Apply(self, [x], [TensorType(x.type.dtype, shape).make_variable()])

    def infer_shape(self, node, shapes):
        return [tuple(constant(s, dtype="int64") if s is not None else d
                      for s, d in zip(self.shape, shapes[0]))]

    def pullback(self, inputs, outputs, grads):
        return [grads[0]]


def specify_shape(x, shape):
    """``x`` with a static shape (entries int or None); checked when run."""
    x = as_tensor_variable(x)
    shape = tuple(None if s is None else int(s) for s in shape)
    if len(shape) != x.type.ndim:
        raise ValueError(f"specify_shape: {len(shape)} entries for {x.type}")
    for d, (s, t) in enumerate(zip(shape, x.type.shape)):
        if s is not None and t is not None and s != t:
            raise ValueError(f"specify_shape: dim {d} of {x.type} cannot be {s}")
    if all(s is None or s == t for s, t in zip(shape, x.type.shape)):
        return x
    return SpecifyShape(shape)(x)


def specify_broadcastable(x, *axes):
    """``x`` with ``axes`` known to have length 1 (so they broadcast); checked when run."""
    x = as_tensor_variable(x)
    axes = {a % max(x.type.ndim, 1) for a in axes}
    return specify_shape(x, [1 if d in axes else s for d, s in enumerate(x.type.shape)])


class Unbroadcast(Op):
    """``x`` with the dims ``axes`` no longer known to have length 1: the same
    values under a looser type (Theano's ``unbroadcast``), e.g. for a scan
    state whose initial value is a row but whose steps are not."""
    __props__ = ("axes",)
    view_map = {0: [0]}

    def __init__(self, axes):
        self.axes = tuple(sorted(axes))

    def make_node(self, x):
        x = as_tensor_variable(x)
        shape = tuple(None if d in self.axes and s == 1 else s
                      for d, s in enumerate(x.type.shape))
        return Apply(self, [x], [TensorType(x.type.dtype, shape).make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        return [specify_like(grads[0], inputs[0])]


def unbroadcast(x, *axes):
    """``x`` with ``axes`` not known to have length 1 (they no longer broadcast)."""
    x = as_tensor_variable(x)
    axes = {a % max(x.type.ndim, 1) for a in axes}
    axes = tuple(d for d in sorted(axes) if x.type.shape[d] == 1)
    return Unbroadcast(axes)(x) if axes else x


def zeros_like(x, dtype=None):
    x = as_tensor_variable(x)
    return alloc_like(constant(0, dtype=dtype or x.type.dtype), x)


def ones_like(x, dtype=None):
    x = as_tensor_variable(x)
    return alloc_like(constant(1, dtype=dtype or x.type.dtype), x)


def _dims(shape):
    if isinstance(shape, Variable) and shape.type.ndim == 1:
        n = shape.type.shape[0]
        if n is None:
            raise ValueError(f"a shape vector must have a known length, got {shape.type}")
        return [shape[i] for i in range(n)]
    if isinstance(shape, (int, np.integer, Variable)):
        shape = (shape,)
    return list(shape)


def zeros(shape, dtype=None):
    from vmc.config import config
    return alloc(constant(0, dtype=dtype or config.floatX), *_dims(shape))


def ones(shape, dtype=None):
    from vmc.config import config
    return alloc(constant(1, dtype=dtype or config.floatX), *_dims(shape))


def full(shape, fill_value, dtype=None):
    """``np.full``: a Python float fills with ``config.floatX``, a variable
    with its own dtype (unless ``dtype`` says otherwise)."""
    if isinstance(fill_value, Variable):
        value = as_tensor_variable(fill_value)
        value = cast(value, dtype) if dtype is not None else value
    else:
        value = constant(fill_value, dtype=dtype)
    return alloc(value, *_dims(shape))


def full_like(x, fill_value, dtype=None):
    x = as_tensor_variable(x)
    return alloc_like(constant(fill_value, dtype=dtype or x.type.dtype), x)


class Join(Op):
    """``np.concatenate`` along ``axis``."""
    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = int(axis)

    def make_node(self, *tensors):
        tensors = [as_tensor_variable(t) for t in tensors]
        if not tensors:
            raise ValueError("concatenate needs at least one tensor")
        ndim = tensors[0].type.ndim
        if any(t.type.ndim != ndim for t in tensors):
            raise TypeError("concatenate: all inputs must have the same rank, got "
                            + ", ".join(str(t.type) for t in tensors))
        dtype = np.result_type(*[t.type.dtype for t in tensors]).name
        tensors = [cast(t, dtype) for t in tensors]
        shape = []
        for d in range(ndim):
            dims = [t.type.shape[d] for t in tensors]
            if d == self.axis:
                shape.append(sum(dims) if None not in dims else None)
            else:
                known = {s for s in dims if s is not None}
                if len(known) > 1:
                    raise TypeError(f"concatenate: shapes differ in dim {d}: "
                                    + ", ".join(str(t.type) for t in tensors))
                shape.append(known.pop() if known else None)
        return Apply(self, tensors, [TensorType(dtype, tuple(shape)).make_variable()])

    def infer_shape(self, node, shapes):
        out = list(shapes[0])
        total = shapes[0][self.axis]
        for s in shapes[1:]:
            total = total + s[self.axis]
        out[self.axis] = total
        return [tuple(out)]

    def pullback(self, inputs, outputs, grads):
        from .subtensor import getitem
        (g,) = grads
        result, start = [], constant(0, dtype="int64")
        for t in inputs:
            stop = start + shape_i(t, self.axis)
            idx = (slice(None),) * self.axis + (slice(start, stop),)
            result.append(specify_like(getitem(g, idx), t))
            start = stop
        return result


def concatenate(tensors, axis=0):
    tensors = [as_tensor_variable(t) for t in tensors]
    if len(tensors) == 1:
        return tensors[0]
    ndim = tensors[0].type.ndim
    axis = axis % max(ndim, 1)
    return Join(axis)(*tensors)


join = lambda axis, *tensors: concatenate(tensors, axis)   # noqa: E731 (Theano's order)


def stack(tensors, *more, axis=0):
    """Join ``tensors`` (a list) along a new dim ``axis``: ``stack([a, b], 1)``.
    Theano's older form ``stack(a, b, c)`` (tensors as arguments) works too."""
    if isinstance(tensors, (list, tuple)):
        if len(more) > 1:
            raise TypeError(f"stack: expected (tensors, axis), got {1 + len(more)} arguments")
        axis = more[0] if more else axis
    else:
        tensors = (tensors,) + more
    tensors = [as_tensor_variable(t) for t in tensors]
    ndim = tensors[0].type.ndim
    axis = axis % (ndim + 1)
    if ndim == 0 and axis == 0 and all(t.type.dtype == tensors[0].type.dtype for t in tensors):
        return MakeVector(tensors[0].type.dtype)(*tensors)
    pattern = list(range(ndim))
    pattern.insert(axis, "x")
    return concatenate([dimshuffle(t, pattern) for t in tensors], axis=axis)


def expand_dims(x, axis):
    x = as_tensor_variable(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out_ndim = x.type.ndim + len(axes)
    axes = sorted(a % out_ndim for a in axes)
    return insert_axes(x, axes, out_ndim)


def shape_padleft(x, n_ones=1):
    x = as_tensor_variable(x)
    return dimshuffle(x, ["x"] * n_ones + list(range(x.type.ndim)))


def shape_padright(x, n_ones=1):
    x = as_tensor_variable(x)
    return dimshuffle(x, list(range(x.type.ndim)) + ["x"] * n_ones)


def squeeze(x, axis=None):
    """Drop dims of length 1. With ``axis=None``, the dims known to be 1
    statically (the rank must be known when the graph is built); a named
    ``axis`` whose length is unknown is checked when the function runs."""
    from .math import normalize_axis
    x = as_tensor_variable(x)
    if axis is None:
        axes = [d for d, s in enumerate(x.type.shape) if s == 1]
    else:
        axes = list(normalize_axis(axis, x.type.ndim, "squeeze"))
        for a in axes:
            s = x.type.shape[a]
            if s is not None and s != 1:
                raise ValueError(f"squeeze: dim {a} of {x.type} has length {s}, not 1")
        if any(x.type.shape[a] is None for a in axes):
            x = SpecifyShape(tuple(1 if d in axes else None for d in range(x.type.ndim)))(x)
    return dimshuffle(x, [d for d in range(x.type.ndim) if d not in axes])
