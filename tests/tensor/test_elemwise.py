"""Every elementwise op of the scalar table against an independent numpy
oracle: several ranks with broadcasting, float32/float64/int/bool dtypes;
output values and dtypes equal numpy's. Gradients with verify_grad."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.special as sps

import vmc.tensor as vt
from vmc.gradient import verify_grad
from vmc.tensor.elemwise import Elemwise
from vmc.tensor.scalar import SCALAR_OPS, get_scalar_op

from .helpers import assert_like_numpy, check_infer_shape, rand, rng, run

# name -> (numpy oracle, float domain per input, int domain per input or None: no ints)
POS, ANY, UNIT, SMALL = (0.5, 3.0), (-2.0, 2.0), (-0.9, 0.9), (-0.5, 2.0)
NONZERO = "nonzero"
ORACLE = {
    "add": (np.add, [ANY, ANY], [ANY, ANY]),
    "sub": (np.subtract, [ANY, ANY], [ANY, ANY]),
    "mul": (np.multiply, [ANY, ANY], [ANY, ANY]),
    "true_div": (np.true_divide, [ANY, NONZERO], [ANY, POS]),
    "int_div": (np.floor_divide, [ANY, NONZERO], [ANY, POS]),
    "mod": (np.mod, [ANY, NONZERO], [ANY, POS]),
    "pow": (np.power, [POS, ANY], [POS, (0, 3)]),
    "maximum": (np.maximum, [ANY, ANY], [ANY, ANY]),
    "minimum": (np.minimum, [ANY, ANY], [ANY, ANY]),
    "arctan2": (np.arctan2, [ANY, NONZERO], [ANY, POS]),
    "neg": (np.negative, [ANY], [ANY]),
    "abs": (np.absolute, [ANY], [ANY]),
    "sign": (np.sign, [ANY], [ANY]),
    "exp": (np.exp, [ANY], [ANY]),
    "log": (np.log, [POS], [POS]),
    "log1p": (np.log1p, [SMALL], [POS]),
    "expm1": (np.expm1, [ANY], [ANY]),
    "log2": (np.log2, [POS], [POS]),
    "log10": (np.log10, [POS], [POS]),
    "sqrt": (np.sqrt, [POS], [POS]),
    "sqr": (lambda x: x * x, [ANY], [ANY]),
    "reciprocal": (lambda x: 1.0 / x if x.dtype.kind == "f" else np.true_divide(1, x),
                   [NONZERO], [POS]),
    "tanh": (np.tanh, [ANY], [ANY]),
    "sigmoid": (lambda x: 1.0 / (1.0 + np.exp(-x)), [ANY], None),
    "softplus": (lambda x: np.log1p(np.exp(x)), [ANY], None),
    "sin": (np.sin, [ANY], [ANY]),
    "cos": (np.cos, [ANY], [ANY]),
    "tan": (np.tan, [(-1.2, 1.2)], [(-1, 1)]),
    "arcsin": (np.arcsin, [UNIT], [(-1, 1)]),
    "arccos": (np.arccos, [UNIT], [(-1, 1)]),
    "arctan": (np.arctan, [ANY], [ANY]),
    "sinh": (np.sinh, [ANY], [ANY]),
    "cosh": (np.cosh, [ANY], [ANY]),
    "arcsinh": (np.arcsinh, [ANY], [ANY]),
    "erf": (sps.erf, [ANY], [ANY]),
    "erfc": (sps.erfc, [ANY], [ANY]),
    "erfinv": (sps.erfinv, [UNIT], [(0, 0)]),
    "gammaln": (sps.gammaln, [POS], [POS]),
    "psi": (sps.digamma, [POS], [POS]),
    "logaddexp": (np.logaddexp, [ANY, ANY], None),
    "log1mexp": (lambda x: np.log(-np.expm1(x)), [(-2.0, -0.1)], None),
    "erfcx": (sps.erfcx, [ANY], None),
    "gammainc": (sps.gammainc, [POS, POS], None),
    "gammaincc": (sps.gammaincc, [POS, POS], None),
    "xlogy": (sps.xlogy, [ANY, POS], None),
    "floor": (np.floor, [ANY], None),
    "ceil": (np.ceil, [ANY], None),
    "round": (np.round, [ANY], [ANY]),
    "identity": (lambda x: x.copy(), [ANY], [ANY]),
    "switch": (np.where, [None, ANY, ANY], [None, ANY, ANY]),
    "clip": (lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
             [ANY, (-1.0, -0.5), (0.5, 1.0)], [ANY, (-1, -1), (1, 1)]),
    "eq": (np.equal, [ANY, ANY], [ANY, ANY]),
    "neq": (np.not_equal, [ANY, ANY], [ANY, ANY]),
    "lt": (np.less, [ANY, ANY], [ANY, ANY]),
    "le": (np.less_equal, [ANY, ANY], [ANY, ANY]),
    "gt": (np.greater, [ANY, ANY], [ANY, ANY]),
    "ge": (np.greater_equal, [ANY, ANY], [ANY, ANY]),
    "and": (np.bitwise_and, None, [ANY, ANY]),
    "or": (np.bitwise_or, None, [ANY, ANY]),
    "xor": (np.bitwise_xor, None, [ANY, ANY]),
    "invert": (np.invert, None, [ANY]),
    "isnan": (np.isnan, [ANY], [ANY]),
    "isinf": (np.isinf, [ANY], [ANY]),
}
BOOL_OPS = ("eq", "neq", "and", "or", "xor", "invert", "switch", "maximum", "minimum")

# Shapes for 1, 2 and 3 inputs: equal ranks, dims of length 1 that broadcast,
# and lower-rank operands padded on the left.
SHAPES = {
    1: [[()], [(5,)], [(2, 3, 4)]],
    2: [[(), ()], [(2, 3), (2, 3)], [(2, 1, 4), (3, 1)], [(4,), (2, 3, 4)]],
    3: [[(), (), ()], [(2, 3), (1, 3), (2, 1)], [(3, 4), (4,), ()]],
}


def test_oracle_covers_the_scalar_table():
    assert set(ORACLE) == set(SCALAR_OPS)


def _value(shape, dtype, dom, gen):
    if dom is None:                              # a switch condition
        return gen.random(shape) < 0.5
    if dom == NONZERO:
        mag = rand(shape, dtype, 0.5, 2.0, gen)
        return np.where(gen.random(shape) < 0.5, -mag, mag).astype(dtype)
    return rand(shape, dtype, dom[0], dom[1], gen)


def _inputs(name, dtype, shapes, gen):
    _, fdom, idom = ORACLE[name]
    doms = fdom if np.dtype(dtype).kind == "f" else (idom or fdom)
    if dtype == "bool":
        doms = [None] * len(shapes)
    vals = [_value(s, dtype, d, gen) for s, d in zip(shapes, doms)]
    syms = [vt.tensor(v.dtype, tuple(1 if n == 1 else None for n in v.shape)) for v in vals]
    return syms, vals


def _cases():
    for name, (_, fdom, idom) in sorted(ORACLE.items()):
        dtypes = (["float32", "float64"] if fdom else []) + (["int32", "int64"] if idom else [])
        if name in BOOL_OPS:
            dtypes.append("bool")
        for dtype in dtypes:
            yield pytest.param(name, dtype, id=f"{name}-{dtype}")


@pytest.mark.parametrize("name,dtype", list(_cases()))
def test_elemwise_forward(name, dtype):
    fn = ORACLE[name][0]
    op = Elemwise(get_scalar_op(name))
    gen = rng(zlib.crc32(f"{name}-{dtype}".encode()))
    all_syms, all_vals, outs, expected = [], [], [], []
    for shapes in SHAPES[op.scalar_op.nin]:
        syms, vals = _inputs(name, dtype, shapes, gen)
        all_syms += syms
        all_vals += vals
        outs.append(op(*syms))
        with np.errstate(all="ignore"):
            expected.append(fn(*vals))
    with np.errstate(all="ignore"):
        got = run(all_syms, outs, *all_vals)
    for g, e, o in zip(got, expected, outs):
        assert o.type.dtype == np.asarray(e).dtype.name       # the type rule is numpy's
        assert_like_numpy(g, e)
    check_infer_shape(outs[-1], all_syms, all_vals)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int64"])
def test_python_scalars_are_weak(dtype):
    # x + 1 keeps x's dtype, as numpy 2 does with Python scalars.
    x = vt.vector(dtype=dtype)
    for out in (x + 1, 2 * x, x - 1, x // 2, x % 3):
        assert out.type.dtype == dtype, out.type
    y = x * 1.5
    assert y.type.dtype == (dtype if dtype.startswith("float") else "float64")


def test_cast_and_astype():
    x = vt.matrix(dtype="float64")
    v = rand((3, 4), "float64", -5, 5)
    for dt in ("int8", "int32", "float32", "bool", "uint8"):
        out = x.astype(dt)
        assert out.type.dtype == dt
        assert_like_numpy(run([x], out, v), v.astype(dt))
    assert vt.cast(x, "float64") is x


def test_runtime_broadcast_of_unknown_dims_is_an_error():
    x, y = vt.matrix(), vt.matrix()
    # (only dims of static length 1 broadcast, as in Theano; the message is the
    # thunk's own, numpy's or a generated kernel's)
    with pytest.raises(ValueError):
        run([x, y], x + y, np.ones((3, 4)), np.ones((1, 4)))


def test_incompatible_static_shapes_name_both_types():
    x = vt.matrix(shape=(3, 4))
    y = vt.tensor3(shape=(2, 5, 4))
    with pytest.raises(TypeError) as err:
        x + y
    msg = str(err.value)
    assert str(x.type) in msg and str(y.type) in msg


# -- gradients ------------------------------------------------------------------------
GRAD_DOMAINS = {name: fdom for name, (_, fdom, _) in ORACLE.items()
                if fdom and SCALAR_OPS[name].kind == "numeric"
                and name not in ("int_div", "sign", "floor", "ceil", "round", "psi",
                                 # no gradient w.r.t. a (test_vocabulary checks x's)
                                 "gammainc", "gammaincc")}


@pytest.mark.parametrize("name", sorted(GRAD_DOMAINS))
def test_elemwise_grad(name):
    op = Elemwise(get_scalar_op(name))
    doms = GRAD_DOMAINS[name]
    gen = rng(7)
    shapes = {1: [(2, 3)], 2: [(2, 3), (1, 3)], 3: [(2, 3), (2, 3), (1, 3)]}[op.scalar_op.nin]
    vals = [_value(s, "float64", d, gen) for s, d in zip(shapes, doms)]
    if name == "mod":
        vals[0] = vals[1] * (np.floor(vals[0] / vals[1]) + 0.5)   # away from the jumps
    if name in ("maximum", "minimum"):
        vals[1] = vals[0][:1] + 0.3                               # no ties
    if name == "switch":
        cond = vals[0]
        vals = vals[1:]

        def fn(a, b):
            return vt.switch(vt.constant(cond), a, vt.specify_broadcastable(b, 0))
    elif name == "clip":
        vals[0][0, 0], vals[0][1, 1] = -2.0, 2.0                   # both bounds active
        vals = [vals[0], np.full((1, 3), -1.0), np.full((1, 3), 1.0)]

    if name != "switch":
        def fn(*xs):
            # verify_grad's inputs have unknown static shapes: restore the
            # dims of length 1 that broadcast in this case.
            xs = [vt.specify_broadcastable(a, 0) if v.shape[0] == 1 else a
                  for a, v in zip(xs, vals)]
            return op(*xs)
    verify_grad(fn, vals)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_grad_keeps_the_input_dtype(dtype):
    import vmc
    x = vt.vector(dtype=dtype)
    g = vmc.grad(vt.sum(vt.exp(x) * 2 + x ** 2), x)
    assert g.type.dtype == dtype
    v = rand((4,), dtype)
    assert_like_numpy(run([x], g, v), (np.exp(v) * 2 + 2 * v).astype(dtype))


def test_python_number_constants_are_shared_only_when_equal_in_every_bit():
    x, i8 = vt.dvector("x"), vt.bvector("i8")
    plus = lambda a, c: (a + c).owner.inputs[1]     # noqa: E731
    assert plus(x, 0.5) is plus(x, 0.5)             # made once
    pz, nz = plus(x, 0.0), plus(x, -0.0)
    assert pz is not nz and np.signbit(nz.data).all() and not np.signbit(pz.data).any()
    assert plus(i8, 1).type.dtype == "int8" and plus(x, 1).type.dtype == "float64"
    assert plus(x, True) is not plus(x, 1)
    assert plus(vt.dmatrix("m"), 0.5).type.ndim == 2
