"""numpy/scipy thunks for the core ops (elementwise, reductions, shapes, indexing)."""
from __future__ import annotations

import numpy as np

from vmc.tensor.creation import ARange, Eye
from vmc.tensor.elemwise import DimShuffle, Elemwise
from vmc.tensor.grad_ops import ViewOp
from vmc.tensor.math import Argmax, CAReduce, Dot
from vmc.tensor.nnet import LogSoftmax, Softmax
from vmc.tensor.shape import (Alloc, Join, MakeVector, Reshape, Shape, ShapeI,
                              SpecifyShape, Unbroadcast)
from vmc.tensor.subtensor import IncSubtensor, Subtensor, build_index

from .broadcast import broadcast_shape, fixed_dims, shape_of
from .registry import register


@register(Elemwise)
def elemwise_thunk(node, destroyable):
    impl = node.op.scalar_op.impl
    out_dtype = np.dtype(node.outputs[0].type.dtype)
    is_ufunc = isinstance(impl, np.ufunc)
    out_shape = node.outputs[0].type.shape
    target = None
    for i in sorted(destroyable):
        v = node.inputs[i]
        # The output can live in input i's buffer when it has the output's
        # dtype and does not broadcast along any dim of the output.
        if v.type.dtype == out_dtype and all(s != 1 or o == 1
                                             for s, o in zip(v.type.shape, out_shape)):
            target = i
            break
    needs_check = len(node.inputs) > 1
    fixed = [fixed_dims(v.type.shape) for v in node.inputs]

    def check(args, rshape):
        broadcast_shape(node.op, [shape_of(a) for a in args], fixed, rshape)

    if is_ufunc and target is not None:
        def thunk(*args):
            a = args[target]
            if isinstance(a, np.ndarray) and a.flags.writeable:
                # Checked before writing: a failed call must leave ``a`` intact
                # (it may be a shared variable's buffer, see compile/late.py).
                check(args, a.shape)
                return impl(*args, out=a)
            r = impl(*args)
            if needs_check:
                check(args, np.shape(r))
            return r
        return thunk

    def thunk(*args):
        r = impl(*args)
        if needs_check:
            check(args, np.shape(r))
        if r.dtype != out_dtype:
            r = r.astype(out_dtype)
        return r
    return thunk


@register(DimShuffle)
def dimshuffle_thunk(node, destroyable):
    return node.op.view_of


@register(CAReduce)
def careduce_thunk(node, destroyable):
    impl, axis = node.op.impl, node.op.axis
    dtype = np.dtype(node.outputs[0].type.dtype)

    def thunk(x):
        r = impl(x, axis=axis)
        return r if r.dtype == dtype else r.astype(dtype)
    return thunk


@register(Argmax)
def argmax_thunk(node, destroyable):
    fn = np.argmax if node.op.kind == "max" else np.argmin
    axis = node.op.axis
    return lambda x: np.asarray(fn(x, axis=axis), dtype=np.int64)


@register(Dot)
def dot_thunk(node, destroyable):
    dtype = np.dtype(node.outputs[0].type.dtype)

    def thunk(x, y):
        try:
            r = np.dot(x, y)
        except ValueError as e:
            raise ValueError(f"dot: shapes {np.shape(x)} and {np.shape(y)} are not aligned "
                             f"({e})") from None
        return r if r.dtype == dtype else r.astype(dtype)
    return thunk


@register(Shape)
def shape_thunk(node, destroyable):
    return lambda x: np.array(np.shape(x), dtype=np.int64)


@register(ShapeI)
def shape_i_thunk(node, destroyable):
    i = node.op.i
    return lambda x: np.array(x.shape[i], dtype=np.int64)


@register(MakeVector)
def make_vector_thunk(node, destroyable):
    dtype = node.op.dtype
    return lambda *xs: np.array(xs, dtype=dtype)


@register(Reshape)
def reshape_thunk(node, destroyable):
    def thunk(x, shape):
        try:
            return np.reshape(x, shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape an array of shape {np.shape(x)} "
                             f"into shape {tuple(shape)}") from None
    return thunk


@register(SpecifyShape)
def specify_shape_thunk(node, destroyable):
    shape = node.op.shape

    def thunk(x):
        if any(s is not None and s != a for s, a in zip(shape, np.shape(x))):
            raise ValueError(f"expected shape {shape}, got {np.shape(x)}")
        return x
    return thunk


@register(Unbroadcast, ViewOp)
def identity_thunk(node, destroyable):
    return _identity


def _identity(x):
    return x


@register(Alloc)
def alloc_thunk(node, destroyable):
    dtype = np.dtype(node.outputs[0].type.dtype)
    fixed = [fixed_dims(node.inputs[0].type.shape)]

    def thunk(value, *dims):
        shape = tuple(int(d) for d in dims)
        # the gradient sums over exactly the dims the type says broadcast
        broadcast_shape("alloc", [np.shape(value)], fixed, shape, what="a value of shape")
        out = np.empty(shape, dtype=dtype)
        out[...] = value
        return out
    return thunk


@register(Join)
def join_thunk(node, destroyable):
    axis = node.op.axis
    return lambda *xs: np.concatenate(xs, axis=axis)


@register(ARange)
def arange_thunk(node, destroyable):
    dtype = node.op.dtype
    return lambda a, b, c: np.arange(a, b, c, dtype=dtype)


@register(Eye)
def eye_thunk(node, destroyable):
    dtype = node.op.dtype
    return lambda n, m, k: np.eye(int(n), int(m), int(k), dtype=dtype)


@register(Subtensor)
def subtensor_thunk(node, destroyable):
    template = node.op.template

    def thunk(x, *idx):
        r = x[build_index(template, idx)]
        return r if isinstance(r, np.ndarray) else np.asarray(r)
    return thunk


@register(IncSubtensor)
def inc_subtensor_thunk(node, destroyable):
    template, set_ = node.op.template, node.op.set
    inplace = 0 in destroyable
    advanced = any(e[0] == "array" for e in template)

    fixed = [fixed_dims(node.inputs[1].type.shape)]

    def thunk(x, y, *idx):
        out = x if inplace and x.flags.writeable else x.copy()
        index = build_index(template, idx)
        if 1 in np.shape(y):        # numpy itself refuses other mismatches
            # the gradient sums over exactly the dims the type says broadcast
            broadcast_shape(node.op, [np.shape(y)], fixed, np.shape(out[index]),
                            what="a value of shape")
        if set_:
            out[index] = y
        elif advanced:
            np.add.at(out, index, y)
        else:
            out[index] += y
        return out
    return thunk


def _softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def _log_softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    s = x - m
    s -= np.log(np.sum(np.exp(s), axis=axis, keepdims=True))
    return s


@register(Softmax)
def softmax_thunk(node, destroyable):
    axis = node.op.axis
    return lambda x: _softmax(x, axis)


@register(LogSoftmax)
def log_softmax_thunk(node, destroyable):
    axis = node.op.axis
    return lambda x: _log_softmax(x, axis)
