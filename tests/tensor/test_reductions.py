"""Reductions with axis int/tuple/None/negative and keepdims against numpy;
argmax/argmin; gradients with verify_grad."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sps

import vmc.tensor as vt
from vmc.gradient import verify_grad

from .helpers import assert_like_numpy, check_infer_shape, rand, run, sym

REDUCTIONS = {
    "sum": (vt.sum, np.sum),
    "prod": (vt.prod, np.prod),
    "max": (vt.max, np.max),
    "min": (vt.min, np.min),
    "mean": (vt.mean, np.mean),
    "var": (vt.var, np.var),
    "std": (vt.std, np.std),
    "all": (vt.all, np.all),
    "any": (vt.any, np.any),
    "logsumexp": (vt.logsumexp, sps.logsumexp),
    "argmax": (vt.argmax, np.argmax),
    "argmin": (vt.argmin, np.argmin),
}
AXES = [None, 0, 1, -1, (0, 2), (2, 0), (0, 1, 2)]
ONE_AXIS = {"argmax", "argmin"}          # numpy takes one axis (or None) there


def _axes_for(name):
    return [a for a in AXES if not (name in ONE_AXIS and isinstance(a, tuple))]


def _dtypes_for(name):
    if name in ("all", "any"):
        return ["bool", "float64", "int32"]
    if name in ("logsumexp", "var", "std", "mean"):
        return ["float32", "float64", "int64"]
    return ["float32", "float64", "int8", "int64"]


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_forward(name):
    fn, oracle = REDUCTIONS[name]
    for dtype in _dtypes_for(name):
        v = rand((2, 3, 4), dtype, -2, 2)
        x = sym(v)
        outs, expected = [], []
        for axis in _axes_for(name):
            for keepdims in (False, True):
                outs.append(fn(x, axis=axis, keepdims=keepdims))
                e = oracle(v, axis=axis, keepdims=keepdims)
                if name == "logsumexp" and np.asarray(e).dtype != v.dtype and dtype != "int64":
                    e = np.asarray(e).astype(v.dtype)    # scipy upcasts float32
                expected.append(np.asarray(e))
        got = run([x], outs, v)
        for g, e, o, in zip(got, expected, outs):
            check_dtype = not (name == "logsumexp" and dtype == "int64")
            assert_like_numpy(g, e, check_dtype=check_dtype)
            assert o.type.ndim == e.ndim


@pytest.mark.parametrize("name", ["sum", "prod", "max", "min", "all", "any", "argmax"])
def test_reduction_of_a_matrix_and_a_scalar(name):
    fn, oracle = REDUCTIONS[name]
    v = rand((3, 5), "float64")
    x = sym(v)
    assert_like_numpy(run([x], fn(x, axis=1), v), oracle(v, axis=1))
    for value in (np.float64(1.5), np.int8(3), np.bool_(True)):
        s = sym(value)
        assert_like_numpy(run([s], fn(s), value), oracle(value))


def test_reductions_keep_numpy_dtypes_of_small_ints():
    v = rand((4, 3), "int8", -3, 3)
    x = sym(v)
    for fn, oracle in ((vt.sum, np.sum), (vt.prod, np.prod), (vt.mean, np.mean)):
        assert_like_numpy(run([x], fn(x, axis=0), v), oracle(v, axis=0))
    assert run([x], vt.sum(x, dtype="float32"), v).dtype == np.float32


def test_reduction_shape_rules():
    v = rand((2, 3, 4))
    x = sym(v)
    for out in (vt.sum(x, axis=(0, 2)), vt.max(x, axis=1), vt.argmax(x, axis=-1),
                vt.argmax(x), vt.all(x > 0, axis=0)):
        check_infer_shape(out, [x], [v])


def test_bad_axes():
    x = vt.matrix()
    with pytest.raises(ValueError, match="out of range"):
        vt.sum(x, axis=2)
    with pytest.raises(ValueError, match="repeated"):
        vt.sum(x, axis=(0, -2))


# -- gradients --------------------------------------------------------------------------
GRADS = {
    "sum": vt.sum, "prod": vt.prod, "max": vt.max, "min": vt.min, "mean": vt.mean,
    "var": vt.var, "std": vt.std, "logsumexp": vt.logsumexp,
}


@pytest.mark.parametrize("name", sorted(GRADS))
@pytest.mark.parametrize("axis", [None, 1, (0, 2)])
def test_reduction_grad(name, axis):
    # Distinct values (no ties for max/min) away from zero (prod divides by x).
    gen = np.random.default_rng(3)
    v = (gen.permutation(12).reshape(2, 3, 2) * 0.1 + 0.5) * gen.choice([-1, 1], (2, 3, 2))
    verify_grad(lambda x: GRADS[name](x, axis=axis), [v])


def test_prod_grad_with_zeros():
    # one zero in a row: the gradient there is the product of the rest;
    # two zeros: all zero. prod is linear in each element, so finite
    # differences are exact at zero too.
    v = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 4.0], [1.5, 2.0, -1.0]])
    verify_grad(lambda x: vt.prod(x, axis=1), [v])
    verify_grad(lambda x: vt.prod(x), [v[[0, 2]]])
    x = vt.matrix()
    import vmc
    g = run([x], vmc.grad(vt.sum(vt.prod(x, axis=1)), x), v)
    assert_like_numpy(g, np.array([[6.0, 0, 0], [0, 0, 0], [-2.0, -1.5, 3.0]]))


def test_keepdims_grad():
    v = rand((3, 4))
    verify_grad(lambda x: vt.sum(x, axis=1, keepdims=True) * x, [v])
    verify_grad(lambda x: vt.var(x, axis=0, ddof=1), [v])
