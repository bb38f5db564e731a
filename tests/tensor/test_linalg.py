"""vt.linalg against numpy/scipy: inv solve solve_triangular cholesky det eigh;
dtypes, shape rules, type errors and gradients."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

import vmc
import vmc.tensor as vt
from vmc.gradient import verify_grad

from .helpers import assert_like_numpy, check_infer_shape, run, sym

gen = np.random.default_rng(11)
A = gen.standard_normal((4, 4)) + 4 * np.eye(4)          # well conditioned
SPD = A @ A.T + np.eye(4)
B = gen.standard_normal((4, 2))
b = gen.standard_normal(4)
L = np.tril(A)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_linalg_forward(dtype):
    def val(v):
        return (v * 3).round().astype(dtype) + (4 * np.eye(4, dtype=dtype) if v.shape == (4, 4)
                                                 else 0) if dtype == "int64" else v.astype(dtype)
    a, spd, bb, bv, lo = val(A), val(SPD), val(B), val(b), val(L)
    fdt = "float64" if dtype == "int64" else dtype
    x, s, y, yv, lt = sym(a), sym(spd), sym(bb), sym(bv), sym(lo)
    af = a.astype(fdt)
    cases = [
        (vt.linalg.inv(x), [x], [a], np.linalg.inv(af)),
        (vt.linalg.det(x), [x], [a], np.asarray(np.linalg.det(af))),
        (vt.linalg.solve(x, y), [x, y], [a, bb], np.linalg.solve(af, bb.astype(fdt))),
        (vt.linalg.solve(x, yv), [x, yv], [a, bv], np.linalg.solve(af, bv.astype(fdt))),
        (vt.linalg.solve(s, y, assume_a="pos"), [s, y], [spd, bb],
         scipy.linalg.solve(spd.astype(fdt), bb.astype(fdt), assume_a="pos")),
        (vt.linalg.solve_triangular(lt, y), [lt, y], [lo, bb],
         scipy.linalg.solve_triangular(lo.astype(fdt), bb.astype(fdt), lower=True)),
        (vt.linalg.cholesky(s), [s], [spd], np.linalg.cholesky(spd.astype(fdt))),
        (vt.linalg.cholesky(s, lower=False), [s], [spd], np.linalg.cholesky(spd.astype(fdt)).T),
    ]
    for out, ins, vals, expected in cases:
        assert out.type.dtype == fdt
        got = run(ins, out, *vals)
        tol = dict(rtol=1e-4, atol=1e-4) if fdt == "float32" else dict(rtol=1e-9, atol=1e-10)
        assert_like_numpy(got, expected.astype(fdt), **tol)
        if out.type.ndim:
            check_infer_shape(out, ins, vals)
    w, v = vt.linalg.eigh(s)
    gw, gv = run([s], [w, v], spd)
    ew, ev = np.linalg.eigh(spd.astype(fdt))
    tol = 1e-4 if fdt == "float32" else 1e-9
    assert_like_numpy(gw, ew, rtol=tol, atol=tol)
    assert_like_numpy(np.abs(gv), np.abs(ev), rtol=tol, atol=tol)     # up to column signs
    check_infer_shape(w, [s], [spd])


def test_linalg_type_errors():
    with pytest.raises(TypeError, match="square"):
        vt.linalg.inv(vt.matrix(shape=(2, 3)))
    with pytest.raises(TypeError, match="matrix"):
        vt.linalg.det(vt.vector())
    with pytest.raises(TypeError):
        vt.linalg.solve(vt.matrix(shape=(3, 3)), vt.vector(shape=(4,)))
    with pytest.raises(TypeError):
        vt.linalg.solve(vt.matrix(), vt.tensor3())
    with pytest.raises(ValueError):
        vt.linalg.solve(vt.matrix(), vt.vector(), assume_a="banded")


def test_singular_and_not_positive_definite_fail_at_run_time():
    x = vt.matrix()
    with pytest.raises(np.linalg.LinAlgError):
        run([x], vt.linalg.inv(x), np.ones((3, 3)))
    with pytest.raises(np.linalg.LinAlgError):
        run([x], vt.linalg.cholesky(x), -np.eye(3))


GRADS = {
    "inv": (lambda a: vt.linalg.inv(a), [A]),
    "det": (lambda a: vt.linalg.det(a), [A]),
    "solve_mat": (lambda a, y: vt.linalg.solve(a, y), [A, B]),
    "solve_vec": (lambda a, y: vt.linalg.solve(a, y), [A, b]),
    "solve_pos": (lambda a, y: vt.linalg.solve(a, y, assume_a="pos"), [SPD, B]),
    "solve_sym_lower": (lambda a, y: vt.linalg.solve(a, y, assume_a="sym", lower=True),
                        [SPD, b]),
    "solve_triangular": (lambda a, y: vt.linalg.solve_triangular(a, y), [L, B]),
    "solve_triangular_upper": (lambda a, y: vt.linalg.solve_triangular(a, y, lower=False),
                               [L.T, b]),
    "cholesky": (lambda a: vt.linalg.cholesky(a), [SPD]),
    "cholesky_upper": (lambda a: vt.linalg.cholesky(a, lower=False), [SPD]),
    "eigh_w": (lambda a: vt.linalg.eigh(a)[0], [SPD]),
    # eigenvectors are defined up to sign: check a sign-free function of them
    "eigh_v": (lambda a: vt.linalg.eigh(a)[1]
               * vt.specify_broadcastable(vt.linalg.eigh(a)[1][:1], 0), [SPD]),
    "eigh_upper": (lambda a: vt.linalg.eigh(a, "U")[0] + vt.linalg.eigh(a, "U")[1][:, 0] ** 2,
                   [SPD]),
}


@pytest.mark.parametrize("name", sorted(GRADS))
def test_linalg_grad(name):
    fn, points = GRADS[name]
    verify_grad(fn, points, abs_tol=1e-5, rel_tol=1e-4)


def test_gradient_of_a_log_likelihood():
    # d/dK of -0.5 y^T K^-1 y - 0.5 log det K = 0.5 (a a^T - K^-1), a = K^-1 y
    k = vt.matrix()
    y = vt.constant(b)
    cost = -0.5 * vt.dot(y, vt.linalg.solve(k, y)) - 0.5 * vt.log(vt.linalg.det(k))
    g = run([k], vmc.grad(cost, k), SPD)
    a = np.linalg.solve(SPD, b)
    assert_like_numpy(g, 0.5 * (np.outer(a, a) - np.linalg.inv(SPD)), rtol=1e-8, atol=1e-10)
