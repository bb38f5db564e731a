"""Neural-network ops against numpy: softmax, log_softmax, relu, softplus,
sigmoid, binary and categorical cross-entropies; gradients."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sps

import vmc
import vmc.tensor as vt
from vmc.gradient import verify_grad

from .helpers import assert_like_numpy, check_infer_shape, rand, run, sym

X = rand((3, 4), "float64", -3, 3)


def _softmax(v, axis=-1):
    e = np.exp(v - v.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


CASES = {
    "softmax": (lambda x: vt.nnet.softmax(x), lambda v: _softmax(v)),
    "softmax_axis0": (lambda x: vt.softmax(x, axis=0), lambda v: _softmax(v, 0)),
    "log_softmax": (lambda x: vt.log_softmax(x), lambda v: np.log(_softmax(v))),
    "log_softmax_axis0": (lambda x: vt.nnet.log_softmax(x, axis=0),
                          lambda v: np.log(_softmax(v, 0))),
    "relu": (lambda x: vt.relu(x), lambda v: np.maximum(v, 0)),
    "leaky_relu": (lambda x: vt.nnet.relu(x, 0.1), lambda v: np.where(v > 0, v, 0.1 * v)),
    "softplus": (lambda x: vt.nnet.softplus(x), lambda v: np.log1p(np.exp(v))),
    "sigmoid": (lambda x: vt.nnet.sigmoid(x), lambda v: sps.expit(v)),
    "sigmoid_bce": (lambda x: vt.nnet.sigmoid_binary_crossentropy(x, vt.constant(X > 0)),
                    lambda v: -((X > 0) * np.log(sps.expit(v))
                                + (X <= 0) * np.log(1 - sps.expit(v)))),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nnet_forward(name, dtype):
    fn, oracle = CASES[name]
    v = X.astype(dtype)
    x = sym(v)
    out = fn(x)
    expected = oracle(v)
    if name == "sigmoid_bce":
        expected = expected.astype(out.type.dtype)
    assert_like_numpy(run([x], out, v), expected.astype(out.type.dtype))
    if out.owner is not None:
        check_infer_shape(out, [x], [v])


@pytest.mark.parametrize("name", sorted(CASES))
def test_nnet_grad(name):
    verify_grad(CASES[name][0], [X + 0.05])        # away from relu's kink at 0


def test_softmax_is_stable_for_large_logits():
    v = np.array([[1000.0, 0.0, -1000.0]])
    x = sym(v)
    got = run([x], [vt.softmax(x), vt.log_softmax(x)], v)
    assert np.isfinite(got[0]).all() and np.isfinite(got[1]).all()
    assert_like_numpy(got[1], np.array([[0.0, -1000.0, -2000.0]]))


def test_softmax_type_errors():
    with pytest.raises(TypeError):
        vt.softmax(vt.scalar())
    with pytest.raises(TypeError):
        vt.softmax(vt.imatrix())


def test_binary_crossentropy():
    p = rand((4, 3), "float64", 0.1, 0.9)
    t = (rand((4, 3)) > 0).astype("float64")
    x, y = sym(p), sym(t)
    out = vt.binary_crossentropy(x, y)
    assert_like_numpy(run([x, y], out, p, t), -(t * np.log(p) + (1 - t) * np.log(1 - p)))
    verify_grad(lambda a: vt.nnet.binary_crossentropy(a, vt.constant(t)), [p])


def test_categorical_crossentropy_integer_and_one_hot_targets():
    p = _softmax(rand((5, 4)))
    t = np.array([0, 3, 1, 1, 2])
    onehot = np.eye(4)[t]
    x = sym(p)
    ti, to = vt.lvector(), vt.matrix()
    expected = -np.log(p[np.arange(5), t])
    assert_like_numpy(run([x, ti], vt.categorical_crossentropy(x, ti), p, t), expected)
    assert_like_numpy(run([x, to], vt.nnet.categorical_crossentropy(x, to), p, onehot), expected)
    verify_grad(lambda a: vt.categorical_crossentropy(a, vt.constant(t)), [p])
    verify_grad(lambda a: vt.categorical_crossentropy(a, vt.constant(onehot)), [p])
    # a vector distribution with a scalar integer target
    assert_like_numpy(run([x], vt.categorical_crossentropy(x[0], 2), p), -np.log(p[0, 2]))
    with pytest.raises(TypeError):
        vt.categorical_crossentropy(x, vt.lmatrix())


def test_softmax_regression_gradient_is_p_minus_onehot():
    w = vt.matrix()
    t = np.array([0, 2, 1])
    xv = rand((3, 4))
    cost = vt.sum(vt.categorical_crossentropy(vt.softmax(vt.dot(vt.constant(xv), w)), t))
    wv = rand((4, 3))
    g = run([w], vmc.grad(cost, w), wv)
    p = _softmax(xv @ wv)
    assert_like_numpy(g, xv.T @ (p - np.eye(3)[t]))
