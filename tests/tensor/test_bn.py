"""Batch normalization against numpy (Theano's formulas: the running variance
takes the unbiased batch variance), its gradients; elu and selu."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gradient import verify_grad
from vmc.tensor.nnet.bn import batch_normalization_test, batch_normalization_train

GEN = np.random.default_rng(3)
X = GEN.standard_normal((4, 3, 2, 5))


def _axes(axes):
    return {"per-activation": (0,), "spatial": (0, 2, 3)}.get(axes, axes)


@pytest.mark.parametrize("axes", ["per-activation", "spatial", (0, 3), (1,)])
@pytest.mark.parametrize("reduced_params", [False, True])
def test_batch_normalization_train_against_numpy(axes, reduced_params):
    ax = _axes(axes)
    pshape = tuple(1 if d in ax else s for d, s in enumerate(X.shape))
    if reduced_params:
        pshape = tuple(s for d, s in enumerate(X.shape) if d not in ax)
    g, b = GEN.standard_normal(pshape), GEN.standard_normal(pshape)
    rm, rv = GEN.standard_normal(pshape), GEN.random(pshape) + 0.5
    x = vt.tensor4("x", dtype="float64")
    syms = [vt.tensor("float64", (None,) * len(pshape), n) for n in "g b rm rv".split()]
    outs = batch_normalization_train(x, *syms[:2], axes=axes, epsilon=1e-3,
                                     running_average_factor=0.3, running_mean=syms[2],
                                     running_var=syms[3])
    got = vmc.function([x] + syms, list(outs))(X, g, b, rm, rv)
    full = lambda p: p.reshape(tuple(1 if d in ax else s for d, s in enumerate(X.shape)))  # noqa
    mean = X.mean(axis=ax, keepdims=True)
    var = X.var(axis=ax, keepdims=True)
    m = np.prod([X.shape[a] for a in ax])
    invstd = 1 / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(got[0], (X - mean) * invstd * full(g) + full(b), rtol=1e-12)
    np.testing.assert_allclose(got[1], mean, rtol=1e-12)
    np.testing.assert_allclose(got[2], invstd, rtol=1e-12)
    np.testing.assert_allclose(got[3], (full(rm) * 0.7 + mean * 0.3).reshape(pshape),
                               rtol=1e-12)
    np.testing.assert_allclose(got[4], (full(rv) * 0.7 + var * m / (m - 1) * 0.3)
                               .reshape(pshape), rtol=1e-12)
    test_out = vmc.function([x] + syms, batch_normalization_test(x, syms[0], syms[1], syms[2],
                                                                 syms[3], axes, 1e-3))
    np.testing.assert_allclose(test_out(X, g, b, rm, rv),
                               (X - full(rm)) * full(g) / np.sqrt(full(rv) + 1e-3) + full(b),
                               rtol=1e-12)


@pytest.mark.parametrize("axes", ["per-activation", "spatial"])
def test_batch_normalization_gradients(axes):
    ax = _axes(axes)
    pshape = tuple(1 if d in ax else s for d, s in enumerate(X.shape))
    x0 = X[:3, :2, :, :3]
    pshape = tuple(1 if d in ax else s for d, s in enumerate(x0.shape))
    g, b = GEN.standard_normal(pshape), GEN.standard_normal(pshape)
    w = GEN.standard_normal(x0.shape)
    verify_grad(lambda x, g, b: batch_normalization_train(x, g, b, axes)[0] * vt.constant(w),
                [x0, g, b], n_tests=1)
    mean, var = GEN.standard_normal(pshape), GEN.random(pshape) + 0.5
    verify_grad(lambda x, g, b, m, v: batch_normalization_test(x, g, b, m, v, axes),
                [x0, g, b, mean, var], n_tests=1)


def test_batch_normalization_errors():
    x = vt.tensor4("x")
    with pytest.raises(TypeError, match="gamma"):
        batch_normalization_train(x, vt.matrix("g"), vt.tensor4("b"))
    with pytest.raises(ValueError, match="both"):
        batch_normalization_train(x, vt.tensor4("g"), vt.tensor4("b"),
                                  running_mean=vt.tensor4("m"))


def test_elu_selu():
    v = np.linspace(-3, 3, 13)
    x = vt.dvector("x")
    f = vmc.function([x], [vt.nnet.elu(x), vt.nnet.elu(x, 0.5), vt.nnet.selu(x)])
    e1, e2, s = f(v)
    np.testing.assert_allclose(e1, np.where(v > 0, v, np.expm1(v)), rtol=1e-12)
    np.testing.assert_allclose(e2, np.where(v > 0, v, 0.5 * np.expm1(v)), rtol=1e-12)
    np.testing.assert_allclose(s, 1.0507009873554805 * np.where(v > 0, v,
                                                                1.6732632423543772 * np.expm1(v)),
                               rtol=1e-12)
    verify_grad(vt.nnet.selu, [v + 0.05])
