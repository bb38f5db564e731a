"""Elemwise nodes left unfused (fusion excluded), and sums/maxima/minima of floats
with no elementwise producer, run as generated C kernels in fast_run, and give
numpy's numbers; fast_compile compiles no C."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.program import CThunk
from vmc.thunks import cgen

pytestmark = pytest.mark.skipif(not cgen.have_compiler(), reason="no C compiler")

NO_FUSION = vmc.Mode("fast_run", linker="cvm").excluding("fusion")


def kinds(f):
    return [isinstance(f.program.thunks[int(t)], CThunk) for t in f.program.thunk if t >= 0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scalar_chain_runs_in_c_and_matches_numpy(dtype):
    x, a, b = (vt.scalar(n, dtype=dtype) for n in "xab")
    y = x
    for i in range(40):
        y = y * a if i % 2 == 0 else vt.tanh(y + b)
    f = vmc.function([x, a, b], y, mode=NO_FUSION)
    assert all(kinds(f))
    xv, av, bv = (np.asarray(v, dtype) for v in (0.5, 1.01, 0.02))
    ref = xv
    for i in range(40):
        ref = ref * av if i % 2 == 0 else np.tanh(ref + bv)
    np.testing.assert_allclose(f(xv, av, bv), ref, rtol=1e-5 if dtype == "float32" else 1e-12)
    np.testing.assert_array_equal(xv, np.asarray(0.5, dtype))       # the argument is intact


def test_broadcasting_and_in_place_matrix_ops():
    x, r = vt.dmatrix("x"), vt.row("r", dtype="float64")
    y = vt.exp(x * r) - x
    f = vmc.function([x, r], [y, y * 2.0], mode=NO_FUSION)
    xv, rv = np.random.default_rng(0).normal(size=(5, 7)), np.linspace(0, 1, 7)[None]
    keep = xv.copy()
    out, out2 = f(xv, rv)
    np.testing.assert_allclose(out, np.exp(xv * rv) - xv, rtol=1e-12)
    np.testing.assert_allclose(out2, 2 * (np.exp(xv * rv) - xv), rtol=1e-12)
    np.testing.assert_array_equal(xv, keep)
    with pytest.raises(ValueError):
        f(xv, np.ones((1, 6)))


def test_fast_compile_builds_no_c():
    x = vt.dvector("x")
    f = vmc.function([x], vt.exp(x) + 1.0, mode="fast_compile")
    assert not any(kinds(f))
    np.testing.assert_allclose(f(np.arange(3.0)), np.exp(np.arange(3.0)) + 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["sum", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1, (0, 2), None])
def test_bare_reductions_run_in_c_and_match_numpy(op, axis, dtype):
    x = vt.tensor3("x", dtype=dtype)
    f = vmc.function([x], getattr(vt, op)(x, axis=axis))
    assert all(kinds(f))
    xv = np.random.default_rng(1).standard_normal((4, 33, 5)).astype(dtype)
    xv[1, 2, 3] = np.nan if op != "sum" else xv[1, 2, 3]
    keep = xv.copy()
    got = f(xv)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, getattr(np, op)(xv, axis=axis), rtol=tol, atol=tol)
    assert np.asarray(got).dtype == dtype
    np.testing.assert_array_equal(xv, keep)
    empty = np.zeros((0, 3, 2), dtype)
    try:                                   # numpy decides: an error or an empty result
        ref = getattr(np, op)(empty, axis=axis)
    except ValueError:
        with pytest.raises(ValueError, match="zero-size"):
            f(empty)
    else:
        np.testing.assert_array_equal(f(empty), ref)


def test_integer_sums_stay_with_numpy():
    x = vt.lmatrix("x")
    f = vmc.function([x], vt.sum(x, axis=0))
    assert not any(kinds(f))
    np.testing.assert_array_equal(f(np.arange(6).reshape(2, 3)), [3, 5, 7])
