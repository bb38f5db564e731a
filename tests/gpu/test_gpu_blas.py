"""Matrix products on the device (cuBLAS on CUDA, the tiled kernel on OpenCL)
against the CPU: dot of every rank pair, gemm/gemv/ger updates, transposed and
strided operands, in place."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt

from .helpers import assert_close, compile_both, ops_on

RNG = np.random.default_rng(1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dot_of_every_rank_pair(device, dtype):
    a, b = vt.matrix("a", dtype=dtype), vt.matrix("b", dtype=dtype)
    u, v = vt.vector("u", dtype=dtype), vt.vector("v", dtype=dtype)
    outs = [vt.dot(a, b), vt.dot(a, v), vt.dot(u, b), vt.dot(u, v), vt.dot(b.T, a.T),
            vt.dot(a[:, ::2], b[::2])]
    f, g = compile_both([a, b, u, v], outs, device)
    on, _ = ops_on(f, device)
    assert "Dot" in on
    args = [RNG.standard_normal(s).astype(dtype) for s in ((37, 20), (20, 19), (20,), (20,))]
    got, want = f(*args), g(*args)
    for x, y in zip(got, want):
        np.testing.assert_allclose(x, y, rtol=1e-4 if dtype == "float32" else 1e-10,
                                   atol=1e-4 if dtype == "float32" else 1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm_gemv_ger_updates_in_place(on, dtype):
    w0 = RNG.standard_normal((17, 9)).astype(dtype)
    v0 = RNG.standard_normal(17).astype(dtype)
    w, v = vmc.shared(w0.copy(), name="w"), vmc.shared(v0.copy(), name="v")
    x, y = vt.matrix("x", dtype=dtype), vt.vector("y", dtype=dtype)
    step = vmc.function([x, y], [], updates=[
        (w, w - 0.5 * vt.dot(x.T, x[:, :9]) + vt.outer(v, y)), (v, v + 2 * vt.dot(w, y))])
    on_dev, off = ops_on(step, on)
    assert {"Gemm", "Gemv"} & set(on_dev) or "Dot" in on_dev
    xv = RNG.standard_normal((5, 17)).astype(dtype)
    yv = RNG.standard_normal(9).astype(dtype)
    before = w.get_value(borrow=True, return_internal_type=True)
    step(xv, yv)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(w.get_value(), w0 - 0.5 * xv.T @ xv[:, :9] + np.outer(v0, yv),
                               rtol=rtol, atol=rtol)
    np.testing.assert_allclose(v.get_value(), v0 + 2 * w0 @ yv, rtol=rtol, atol=rtol)
    del before


def test_products_with_empty_and_single_dims(device):
    a, b = vt.dmatrix("a"), vt.dmatrix("b")
    f, g = compile_both([a, b], vt.dot(a, b), device)
    for sa, sb in (((0, 3), (3, 4)), ((3, 0), (0, 4)), ((1, 1), (1, 1)), ((1, 5), (5, 1))):
        av, bv = RNG.standard_normal(sa), RNG.standard_normal(sb)
        assert_close(f(av, bv), g(av, bv))
