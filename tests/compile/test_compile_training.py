"""Logistic regression and a two-layer MLP trained with vmc.function(updates=)
match a hand-written numpy implementation step by step (float64, 1e-10)."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt

from compile_helpers import MODES

RTOL, ATOL = 1e-10, 1e-13
STEPS = 15


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


def make_data(n=64, d=5, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    t = rng.integers(0, classes, size=n)
    return X, t


@pytest.mark.parametrize("mode", MODES)
def test_logistic_regression_matches_numpy(mode):
    X, t = make_data()
    y = t.astype(np.float64)
    n, d = X.shape
    lr = 0.5
    rng = np.random.default_rng(1)
    w0, b0 = rng.standard_normal(d) * 0.1, 0.05

    xs, ys = vt.dmatrix("X"), vt.dvector("y")
    w = vmc.shared(w0.copy(), name="w")
    b = vmc.shared(np.float64(b0), name="b")
    p = vt.sigmoid(vt.dot(xs, w) + b)
    loss = -(ys * vt.log(p) + (1 - ys) * vt.log(1 - p)).mean()
    gw, gb = vmc.grad(loss, [w, b])
    with vmc.config.change(optimizer=None if mode == "None" else mode):
        step = vmc.function([xs, ys], loss, updates=[(w, w - lr * gw), (b, b - lr * gb)])

    wn, bn = w0.copy(), b0
    for _ in range(STEPS):
        pn = 1 / (1 + np.exp(-(X @ wn + bn)))
        loss_n = -np.mean(y * np.log(pn) + (1 - y) * np.log(1 - pn))
        gwn, gbn = X.T @ (pn - y) / n, np.mean(pn - y)
        wn, bn = wn - lr * gwn, bn - lr * gbn
        close(step(X, y), loss_n)
        close(w.get_value(), wn)
        close(b.get_value(), bn)


def numpy_mlp_step(X, t, params, lr):
    W1, b1, W2, b2 = params
    n = X.shape[0]
    h = np.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(n), t]))
    d_logits = p.copy()
    d_logits[np.arange(n), t] -= 1
    d_logits /= n
    gW2, gb2 = h.T @ d_logits, d_logits.sum(0)
    d_pre = (d_logits @ W2.T) * (1 - h ** 2)
    gW1, gb1 = X.T @ d_pre, d_pre.sum(0)
    grads = (gW1, gb1, gW2, gb2)
    return loss, [v - lr * g for v, g in zip(params, grads)]


@pytest.mark.parametrize("mode", MODES)
def test_two_layer_mlp_matches_numpy(mode):
    X, t = make_data(n=48, d=6, classes=3, seed=2)
    rng = np.random.default_rng(3)
    shapes = [(6, 8), (8,), (8, 3), (3,)]
    init = [rng.standard_normal(s) * 0.3 for s in shapes]
    lr = 0.3

    xs, ts = vt.dmatrix("X"), vt.lvector("t")
    params = [vmc.shared(v.copy(), name=nm) for v, nm in zip(init, ["W1", "b1", "W2", "b2"])]
    W1, b1, W2, b2 = params
    h = vt.tanh(vt.dot(xs, W1) + b1)
    p = vt.softmax(vt.dot(h, W2) + b2)
    loss = -vt.log(p[vt.arange(ts.shape[0]), ts]).mean()
    grads = vmc.grad(loss, params)
    with vmc.config.change(optimizer=None if mode == "None" else mode):
        step = vmc.function([xs, ts], loss,
                            updates=[(v, v - lr * g) for v, g in zip(params, grads)])

    state = [v.copy() for v in init]
    for _ in range(STEPS):
        loss_n, state = numpy_mlp_step(X, t, state, lr)
        close(step(X, t), loss_n)
        for v, s in zip(params, state):
            close(v.get_value(), s)
