"""specialize: powers, and the BLAS ops (gemm, gemv, ger) with their numpy thunks."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.tensor.blas_ops import Gemm, Gemv, Ger
from vmc.tensor.math import Dot
from vmc.thunks import py_thunk

from opt_helpers import absent, NOFUSE, compile_fn, nodes, op_names

# A rewrite loop must fail the test, not just slow it down.
pytestmark = pytest.mark.filterwarnings("error:vmc.opt:UserWarning")

V = np.array([0.5, 1.5, 2.0, 4.0])


@pytest.mark.parametrize("p, ops", [
    (2, ["sqr"]),                          # x**2 -> sqr
    (0.5, ["sqrt"]),                       # x**0.5 -> sqrt
    (-1, ["reciprocal"]),                  # x**-1 -> reciprocal
    (-0.5, ["sqrt", "reciprocal"]),
    (3, ["sqr", "mul"]),                   # small integer powers -> multiplications
    (4, ["sqr", "sqr"]),
    (5, ["sqr", "sqr", "mul"]),
    (-2, ["sqr", "reciprocal"]),
    (1, []),
    (2.5, ["pow"]),                        # not special: stays
    (40, ["pow"]),
])
def test_powers(p, ops):
    x = vt.vector("x")
    f = compile_fn([x], x ** p, mode=NOFUSE)
    assert sorted(op_names(f)) == sorted(ops)
    np.testing.assert_allclose(f(V), V ** p, rtol=1e-13)


def test_power_zero_is_ones():
    x = vt.vector("x")
    f = compile_fn([x], x ** 0, mode=NOFUSE)
    absent(f, "pow")
    np.testing.assert_array_equal(f(np.array([np.nan, 2.0])), [1.0, 1.0])


def _blas_nodes(f):
    return [type(n.op) for n in nodes(f) if isinstance(n.op, (Gemm, Gemv, Ger, Dot))]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gemm(dtype):
    rng = np.random.default_rng(0)
    z, x, y = (vt.matrix(n, dtype=dtype) for n in "zxy")
    a = vt.scalar("a", dtype=dtype)
    zv, xv, yv = (rng.standard_normal(s).astype(dtype) for s in ((3, 4), (3, 5), (5, 4)))
    tol = 1e-5 if dtype == "float32" else 1e-12
    cases = [
        (z + vt.dot(x, y), zv + xv @ yv),                              # z + x@y
        (2 * z - 0.5 * vt.dot(x, y), 2 * zv - 0.5 * xv @ yv),          # b*z + a*x@y
        (z - a * vt.dot(x, y) + 1.0, zv - 0.25 * xv @ yv + 1),         # with a leftover term
        (vt.dot(x, y) * a + z * a, 0.25 * (xv @ yv + zv)),
        (z - vt.dot(x.T.T, y), zv - xv @ yv),
    ]
    for expr, expected in cases:
        f = compile_fn([z, x, y, a], expr, mode=NOFUSE)
        assert _blas_nodes(f) == [Gemm], op_names(f)
        np.testing.assert_allclose(f(zv, xv, yv, np.asarray(0.25, dtype)), expected,
                                   rtol=tol, atol=tol)


def test_gemm_with_transposed_operands_and_shared_dot_left_alone():
    rng = np.random.default_rng(1)
    z, x, y = vt.matrices("z", "x", "y")
    zv, xv, yv = rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), \
        rng.standard_normal((3, 3))
    f = compile_fn([z, x, y], z - 0.1 * vt.dot(x.T, y), mode=NOFUSE)
    assert _blas_nodes(f) == [Gemm]
    np.testing.assert_allclose(f(zv, xv, yv), zv - 0.1 * xv.T @ yv)
    d = vt.dot(x, y)
    f = compile_fn([z, x, y], [z + d, d * 2], mode=NOFUSE)   # the product is needed twice
    assert _blas_nodes(f) == [Dot]
    r1, r2 = f(zv, xv, yv)
    np.testing.assert_allclose(r1, zv + xv @ yv)


def test_gemv_and_ger():
    rng = np.random.default_rng(2)
    m = vt.matrix("m")
    u, v, w = vt.vectors("u", "v", "w")
    mv, uv, vv, wv = (rng.standard_normal(s) for s in ((3, 4), 4, 3, 4))
    f = compile_fn([m, u, v], v + 2 * vt.dot(m, u), mode=NOFUSE)
    assert _blas_nodes(f) == [Gemv]
    np.testing.assert_allclose(f(mv, uv, vv), vv + 2 * mv @ uv)
    f = compile_fn([m, w, v], w - vt.dot(v, m), mode=NOFUSE)        # v @ m == m.T @ v
    assert _blas_nodes(f) == [Gemv]
    np.testing.assert_allclose(f(mv, wv, vv), wv - vv @ mv)
    f = compile_fn([m, u, v], m + 0.5 * vt.outer(v, u), mode=NOFUSE)
    assert _blas_nodes(f) == [Ger]
    np.testing.assert_allclose(f(mv, uv, vv), mv + 0.5 * np.outer(vv, uv))
    f = compile_fn([m, u, v], m - vt.dot(v[:, None], u[None, :]), mode=NOFUSE)
    assert _blas_nodes(f) == [Ger]
    np.testing.assert_allclose(f(mv, uv, vv), mv - np.outer(vv, uv))


def test_plain_dots_stay_dot():
    x, y = vt.matrices("x", "y")
    u = vt.vector("u")
    for e in (vt.dot(x, y), vt.dot(x, u), vt.dot(u, u)):
        f = compile_fn([x, y, u], e, mode=NOFUSE)
        assert _blas_nodes(f) == [Dot]


@pytest.mark.parametrize("inplace", [False, True])
def test_blas_numpy_thunks(inplace):
    rng = np.random.default_rng(3)
    z, x, y = vt.matrices("z", "x", "y")
    u, v = vt.vectors("u", "v")
    d = frozenset([0]) if inplace else frozenset()
    zv, xv, yv = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), \
        rng.standard_normal((4, 3))
    node = Gemm().make_node(z, 2.0, x, y, 0.5)
    buf = zv.copy()
    out = py_thunk(node, d)(buf, np.array(2.0), xv, yv, np.array(0.5))
    np.testing.assert_allclose(out, 0.5 * zv + 2 * xv @ yv)
    assert (out is buf) == inplace
    node = Gemm().make_node(z, 1.0, x, y, 0.0)               # beta == 0 ignores z (even nan)
    np.testing.assert_allclose(py_thunk(node, d)(np.full((2, 3), np.nan), np.array(1.0), xv,
                                                 yv, np.array(0.0)), xv @ yv)
    node = Gemv().make_node(u, -1.0, x, v, 1.0)
    uv, vv = rng.standard_normal(2), rng.standard_normal(4)
    np.testing.assert_allclose(py_thunk(node, d)(uv.copy(), np.array(-1.0), xv, vv,
                                                 np.array(1.0)), uv - xv @ vv)
    node = Ger().make_node(x, 3.0, u, v)
    np.testing.assert_allclose(py_thunk(node, d)(xv.copy(), np.array(3.0), uv, vv),
                               xv + 3 * np.outer(uv, vv))
    with pytest.raises(ValueError, match="gemm"):
        py_thunk(Gemm().make_node(z, 1.0, x, y, 1.0), d)(np.zeros((5, 5)), np.array(1.0),
                                                          xv, yv, np.array(1.0))


def test_sgd_update_is_one_gemm_per_weight():
    rng = np.random.default_rng(4)
    w = vmc.shared(rng.standard_normal((5, 3)), name="w")
    x = vt.matrix("x")
    cost = vt.sum(vt.tanh(vt.dot(x, w)))
    f = vmc.function([x], cost, updates=[(w, w - 0.1 * vmc.grad(cost, w))])
    assert _blas_nodes(f) == [Dot, Gemm]
    xv = rng.standard_normal((4, 5))
    w0 = w.get_value()
    f(xv)
    h = np.tanh(xv @ w0)
    np.testing.assert_allclose(w.get_value(), w0 - 0.1 * xv.T @ (1 - h * h))


def test_blas_update_op_gradients():
    """Gemm, Gemv and Ger built directly are differentiable in every input."""
    rng = np.random.default_rng(4)
    a, s = np.array(1.5), np.array(-0.5)
    zm, xm, ym = (rng.standard_normal(sh) for sh in ((2, 3), (2, 4), (4, 3)))
    zv, vv, wv = rng.standard_normal(2), rng.standard_normal(4), rng.standard_normal(3)
    vmc.gradient.verify_grad(lambda z, al, x, y, be: Gemm()(z, al, x, y, be),
                             [zm, a, xm, ym, s], rng=rng)
    vmc.gradient.verify_grad(lambda z, al, x, y, be: Gemv()(z, al, x, y, be),
                             [zv, a, xm, vv, s], rng=rng)
    vmc.gradient.verify_grad(lambda m, al, x, y: Ger()(m, al, x, y), [zm, a, zv, wv], rng=rng)
