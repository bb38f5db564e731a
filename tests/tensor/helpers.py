"""Shared helpers of the tensor tests: run graphs through ``vmc.function`` and
check values, dtypes and shape rules against numpy."""
from __future__ import annotations

import numpy as np

import vmc
import vmc.tensor as vt
from vmc.graph.basic import Constant
from vmc.graph.type import TensorType
from vmc.program import THUNK, CThunk

SEED = 20240601


def rng(seed=SEED):
    return np.random.default_rng(seed)


def rand(shape, dtype="float64", low=-2.0, high=2.0, gen=None):
    """Random values of ``dtype``: uniform floats in [low, high), ints in
    [low, high], booleans half true."""
    gen = gen if gen is not None else rng()
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return gen.random(shape) < 0.5
    if dtype.kind in "iu":
        lo = int(np.ceil(low))
        lo = max(lo, 0) if dtype.kind == "u" else lo
        return gen.integers(lo, int(np.floor(high)) + 1, size=shape).astype(dtype)
    return gen.uniform(low, high, size=shape).astype(dtype)


def sym(value, name=None, static=False):
    """A symbolic input matching ``value`` (static shape only when asked)."""
    value = np.asarray(value)
    shape = value.shape if static else (None,) * value.ndim
    return vt.tensor(value.dtype, shape, name=name)


def run(inputs, outputs, *values, **kwargs):
    """Compile ``outputs`` of ``inputs`` and call it once on ``values``."""
    f = vmc.function(list(inputs), outputs, on_unused_input="ignore", **kwargs)
    return f(*values)


def assert_like_numpy(got, expected, rtol=None, atol=None, check_dtype=True):
    """Equal values (close for floats) and, unless told, equal dtypes."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if check_dtype:
        assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    if expected.dtype.kind in "fc":
        tight = got.dtype == np.float32 or expected.dtype == np.float32
        np.testing.assert_allclose(
            got, expected, equal_nan=True,
            rtol=rtol if rtol is not None else (2e-5 if tight else 1e-10),
            atol=atol if atol is not None else (1e-6 if tight else 1e-12))
    else:
        np.testing.assert_array_equal(got, expected)


def check_infer_shape(out, inputs, values):
    """The shape rule of ``out``'s node, compiled and run, gives the shape of
    every tensor output the op computes on ``values``."""
    node = out.owner
    in_shapes = [_shape_entries(v) if isinstance(v.type, TensorType) else None
                 for v in node.inputs]
    shapes = node.op.infer_shape(node, in_shapes)
    assert len(shapes) == len(node.outputs)
    flat, where, known = [], [], []
    for k, (o, s) in enumerate(zip(node.outputs, shapes)):
        if not isinstance(o.type, TensorType):
            continue
        assert s is not None and len(s) == o.type.ndim, (node.op, k, s)
        for d, e in enumerate(s):
            e = vt.as_tensor_variable(e)
            if isinstance(e, Constant):
                # (Compiling a bare constant as an output is not needed here.)
                known.append(((k, d), int(e.data)))
            else:
                flat.append(vt.cast(e, "int64"))
                where.append((k, d))
    actual = run(inputs, [o for o in node.outputs if isinstance(o.type, TensorType)], *values)
    tensor_outs = [k for k, o in enumerate(node.outputs) if isinstance(o.type, TensorType)]
    got = run(inputs, flat, *values) if flat else []
    for (k, d), v in list(zip(where, got)) + known:
        real = np.shape(actual[tensor_outs.index(k)])[d]
        assert int(v) == real, f"{node.op}: output {k} dim {d}: rule says {int(v)}, got {real}"
    # The static shape must agree with the values too.
    for k in tensor_outs:
        a = actual[tensor_outs.index(k)]
        for d, s in enumerate(node.outputs[k].type.shape):
            assert s is None or s == np.shape(a)[d], (node.op, k, node.outputs[k].type,
                                                      np.shape(a))


def _shape_entries(v):
    return tuple(vt.shape_i(v, d) for d in range(v.type.ndim))


def thunk_kinds(f):
    """{op class name: {'c', 'py'}}: how each node of ``f`` runs."""
    kinds = {}
    p = f.program
    for pc, node in f.node_of_pc.items():
        if int(p.kind[pc]) == THUNK:
            kind = "c" if isinstance(p.thunks[int(p.thunk[pc])], CThunk) else "py"
            kinds.setdefault(type(node.op).__name__, set()).add(kind)
    return kinds


def misaligned(a):
    """A copy of ``a`` whose data starts one byte past an aligned address."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, a.dtype, a.size, 1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out
