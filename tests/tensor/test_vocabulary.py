"""cumsum, cumprod, sort, argsort, einsum, the special functions and nlinalg
against numpy/scipy; their gradients with verify_grad."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sps

import vmc
import vmc.tensor as vt
from vmc.gradient import verify_grad
from vmc.tensor import nlinalg
from vmc.tensor.extra_ops import cumsum

from .helpers import assert_like_numpy, check_infer_shape

GEN = np.random.default_rng(9)
M = GEN.standard_normal((3, 4))
SQ = GEN.standard_normal((3, 3)) + 2 * np.eye(3)

ARRAY_CASES = {
    "cumsum_none": (lambda x: cumsum(x), lambda v: np.cumsum(v)),
    "cumsum_1": (lambda x: vt.cumsum(x, axis=1), lambda v: np.cumsum(v, axis=1)),
    "cumprod_0": (lambda x: vt.cumprod(x, axis=0), lambda v: np.cumprod(v, axis=0)),
    "cumprod_none": (lambda x: vt.cumprod(x), lambda v: np.cumprod(v)),
    "sort_last": (lambda x: vt.sort(x), lambda v: np.sort(v)),
    "sort_0": (lambda x: vt.sort(x, axis=0), lambda v: np.sort(v, axis=0)),
    "sort_none": (lambda x: vt.sort(x, axis=None), lambda v: np.sort(v, axis=None)),
    "einsum_matmul": (lambda x: vt.einsum("ij,kj->ik", x, x), lambda v: v @ v.T),
    "einsum_implicit": (lambda x: vt.einsum("ij,jk", x, x.T), lambda v: v @ v.T),
    "einsum_trace_free": (lambda x: vt.einsum("ij,ij->", x, x ** 2),
                          lambda v: np.sum(v ** 3)),
    "einsum_batch": (lambda x: vt.einsum("bi,bj,j->bi", x, x, x[0]),
                     lambda v: np.einsum("bi,bj,j->bi", v, v, v[0])),
    "einsum_sum_out": (lambda x: vt.einsum("ij->j", x), lambda v: v.sum(0)),
    "logaddexp": (lambda x: vt.logaddexp(x, x[::-1]), lambda v: np.logaddexp(v, v[::-1])),
    "log1mexp": (lambda x: vt.log1mexp(-x * x - 0.01),
                 lambda v: np.log(-np.expm1(-v * v - 0.01))),
    "erfc": (lambda x: vt.erfc(x), sps.erfc),
    "erfcx": (lambda x: vt.erfcx(x), sps.erfcx),
    "digamma": (lambda x: vt.digamma(x * x + 0.5), lambda v: sps.digamma(v * v + 0.5)),
    "gammainc": (lambda x: vt.gammainc(2.5, x * x), lambda v: sps.gammainc(2.5, v * v)),
    "gammaincc": (lambda x: vt.gammaincc(1.5, x * x + 0.1),
                  lambda v: sps.gammaincc(1.5, v * v + 0.1)),
    "xlogy": (lambda x: vt.xlogy(x, x * x + 0.1), lambda v: sps.xlogy(v, v * v + 0.1)),
}
NO_GRAD = {"digamma"}      # psi's own derivative (polygamma) is not implemented


@pytest.mark.parametrize("name", sorted(ARRAY_CASES))
def test_against_numpy(name):
    fn, oracle = ARRAY_CASES[name]
    x = vt.dmatrix("x")
    out = fn(x)
    assert_like_numpy(vmc.function([x], out)(M), oracle(M), rtol=1e-12, atol=1e-12)
    if out.owner is not None and not name.startswith("einsum"):
        check_infer_shape(out, [x], [M])


@pytest.mark.parametrize("name", sorted(set(ARRAY_CASES) - NO_GRAD))
def test_gradients(name):
    verify_grad(ARRAY_CASES[name][0], [M], n_tests=1)


def test_argsort_and_float32():
    x = vt.fmatrix("x")
    f = vmc.function([x], [vt.argsort(x), vt.argsort(x, axis=None), vt.cumsum(x, 0),
                           vt.logaddexp(x, x)])
    v = M.astype("float32")
    a, b, c, d = f(v)
    np.testing.assert_array_equal(a, np.argsort(v, kind="stable"))
    np.testing.assert_array_equal(b, np.argsort(v, axis=None, kind="stable"))
    assert c.dtype == np.float32 and d.dtype == np.float32
    np.testing.assert_allclose(c, np.cumsum(v, 0), rtol=1e-6)
    with pytest.raises(NotImplementedError, match="repeated"):
        vt.einsum("ii->i", x)


def test_einsum_lowers_to_tensordot():
    x, y = vt.dmatrix("x"), vt.dmatrix("y")
    f = vmc.function([x, y], vt.einsum("ij,jk->ik", x, y))
    names = {type(n.op).__name__ for n in f.fgraph.toposort()}
    assert names & {"Dot", "Gemm", "Dot22", "Gemv"} or any("Gemm" in n or "Dot" in n
                                                           for n in names), names


NLINALG = {
    "slogdet": (lambda x: nlinalg.slogdet(x)[1], lambda v: np.linalg.slogdet(v)[1]),
    "slogdet_sign": (lambda x: nlinalg.slogdet(-x)[0], lambda v: np.linalg.slogdet(-v)[0]),
    "det": (lambda x: nlinalg.det(x), np.linalg.det),
    "pinv": (lambda x: vt.linalg.pinv(x[:, :2]), lambda v: np.linalg.pinv(v[:, :2])),
    "svd_s": (lambda x: nlinalg.svd(x, compute_uv=False), lambda v: np.linalg.svd(v, 1, 0)),
}


@pytest.mark.parametrize("name", sorted(NLINALG))
def test_nlinalg_against_numpy_and_grad(name):
    fn, oracle = NLINALG[name]
    x = vt.dmatrix("x")
    assert_like_numpy(vmc.function([x], fn(x))(SQ), oracle(SQ), rtol=1e-10, atol=1e-12)
    if name != "slogdet_sign":
        verify_grad(fn, [SQ], n_tests=1)


def test_nlinalg_factorizations():
    x = vt.dmatrix("x")
    u, s, vh = nlinalg.svd(x, full_matrices=False)
    q, r = nlinalg.qr(x)
    sol, res, rank, sv = nlinalg.lstsq(x, x[:, 0])
    f = vmc.function([x], [u, s, vh, q, r, sol, rank])
    a = GEN.standard_normal((4, 3))
    got = f(a)
    np.testing.assert_allclose(got[0] * got[1] @ got[2], a, atol=1e-12)
    np.testing.assert_allclose(got[3] @ got[4], a, atol=1e-12)
    np.testing.assert_allclose(got[5], np.linalg.lstsq(a, a[:, 0], rcond=None)[0], atol=1e-12)
    assert got[6] == 3
    g = vmc.function([x], list(nlinalg.eig(x)))
    wv, vv = g(SQ)
    np.testing.assert_allclose(SQ @ vv, vv * wv, atol=1e-10)
    for o in (u, q):
        check_infer_shape(o, [x], [a])
