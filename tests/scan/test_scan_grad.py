"""Gradients through scan: hand-written BPTT and finite differences."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gradient import verify_grad
from vmc.scan import scan, until

RNG = np.random.default_rng(1)


def rnn_data(steps=6, batch=3, n_in=4, n_hid=5):
    return (RNG.standard_normal((steps, batch, n_in)), RNG.standard_normal((n_in, n_hid)) * 0.3,
            RNG.standard_normal((n_hid, n_hid)) * 0.3, RNG.standard_normal(n_hid) * 0.1,
            RNG.standard_normal((batch, n_hid)) * 0.1)


def numpy_rnn(X, W, U, b, h0):
    H, h = [], h0
    for t in range(X.shape[0]):
        h = np.tanh(X[t] @ W + h @ U + b)
        H.append(h)
    return np.array(H)


def numpy_bptt(X, W, U, b, h0, C):
    """Gradients of sum(H * C) w.r.t. X, W, U, b, h0."""
    H = numpy_rnn(X, W, U, b, h0)
    gX, gW, gU, gb = np.zeros_like(X), np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    dh = np.zeros_like(h0)
    for t in reversed(range(X.shape[0])):
        da = (dh + C[t]) * (1 - H[t] ** 2)
        prev = H[t - 1] if t > 0 else h0
        gX[t] = da @ W.T
        gW += X[t].T @ da
        gU += prev.T @ da
        gb += da.sum(0)
        dh = da @ U.T
    return gX, gW, gU, gb, dh


def rnn_graph():
    X, W, U, h0 = vt.tensor3("X"), vt.matrix("W"), vt.matrix("U"), vt.matrix("h0")
    b = vt.vector("b")
    H, _ = scan(lambda x_t, h, W, U, b: vt.tanh(vt.dot(x_t, W) + vt.dot(h, U) + b),
                sequences=X, outputs_info=h0, non_sequences=[W, U, b])
    return (X, W, U, b, h0), H


def test_rnn_forward_and_bptt_against_numpy():
    ins, H = rnn_graph()
    C = vt.tensor3("C")
    cost = vt.sum(H * C)
    grads = vmc.grad(cost, list(ins))
    f = vmc.function(list(ins) + [C], [H] + grads)
    data = rnn_data()
    c = RNG.standard_normal((6, 3, 5))
    out = f(*data, c)
    np.testing.assert_allclose(out[0], numpy_rnn(*data), rtol=1e-12)
    for got, ref in zip(out[1:], numpy_bptt(*data, c)):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_rnn_grad_with_shared_weights():
    X = vt.tensor3("X")
    data = rnn_data()
    W, U = vmc.shared(data[1], name="W"), vmc.shared(data[2], name="U")
    b, h0 = vmc.shared(data[3], name="b"), vt.matrix("h0")
    H, _ = scan(lambda x_t, h: vt.tanh(vt.dot(x_t, W) + vt.dot(h, U) + b),
                sequences=X, outputs_info=h0)
    cost = H.sum()
    gW, gU = vmc.grad(cost, [W, U])
    f = vmc.function([X, h0], [cost, gW, gU])
    out = f(data[0], data[4])
    ref = numpy_bptt(*data, np.ones((6, 3, 5)))
    np.testing.assert_allclose(out[0], numpy_rnn(*data).sum())
    np.testing.assert_allclose(out[1], ref[1], rtol=1e-10)
    np.testing.assert_allclose(out[2], ref[2], rtol=1e-10)


def test_verify_grad_cumprod_with_taps_and_nonseq():
    def fn(x, y0, w):
        out, _ = scan(lambda x_t, a, b, w: a * x_t + b * w,
                      sequences=x, outputs_info=dict(initial=y0, taps=[-2, -1]),
                      non_sequences=w)
        return out
    verify_grad(fn, [RNG.uniform(0.5, 1.5, 5), RNG.standard_normal(2), np.asarray(0.7)])


def test_verify_grad_sequence_taps_go_backwards():
    def fn(x, h0):
        out, _ = scan(lambda xm1, xp1, h: vt.sin(h) * xm1 + xp1,
                      sequences=dict(input=x, taps=[-1, 1]), outputs_info=h0,
                      go_backwards=True)
        return out
    verify_grad(fn, [RNG.standard_normal(7), np.asarray(0.3)])


def test_verify_grad_nit_and_rec_outputs_mixed():
    def fn(x, h0, w):
        (h, y), _ = scan(lambda x_t, h, w: (vt.tanh(h * w + x_t), h * x_t),
                         sequences=x, outputs_info=[h0, None], non_sequences=w)
        return vt.sum(h) + vt.sum(y ** 2)
    verify_grad(fn, [RNG.standard_normal(5), np.asarray(0.2), np.asarray(0.9)])


def test_grad_through_until():
    x0 = vt.scalar("x0")
    c = vt.scalar("c")
    vals, _ = scan(lambda p, c: (p * c, until(p * c > 10)), outputs_info=x0,
                   non_sequences=c, n_steps=20)
    cost = vals.sum()
    g = vmc.grad(cost, [x0, c])
    f = vmc.function([x0, c], [vals, cost] + g)
    out = f(1.0, 2.0)
    np.testing.assert_allclose(out[0], [2, 4, 8, 16])
    # sum_{k=1..4} x0 c^k
    np.testing.assert_allclose(out[2], 2 + 4 + 8 + 16)
    np.testing.assert_allclose(out[3], sum(k * 2.0 ** (k - 1) for k in range(1, 5)))


def test_truncate_gradient():
    x = vt.vector("x")
    h0 = vt.scalar("h0")
    w = vt.scalar("w")
    h, _ = scan(lambda x_t, h, w: h * w + x_t, sequences=x, outputs_info=h0,
                non_sequences=w, truncate_gradient=2)
    gx, gh0 = vmc.grad(h[-1], [x, h0])
    f = vmc.function([x, h0, w], [gx, gh0])
    v = np.arange(1.0, 6.0)
    out = f(v, 1.0, 0.5)
    # Only the last two steps are back-propagated through.
    np.testing.assert_allclose(out[0], [0, 0, 0, 0.5, 1.0])
    assert out[1] == 0.0
    out = f(v[:2], 1.0, 0.5)
    np.testing.assert_allclose(out[0], [0.5, 1.0])
    assert out[1] == pytest.approx(0.25)


def test_grad_of_grad():
    x = vt.scalar("x")
    n = 4
    y, _ = scan(lambda p, x: p * x, outputs_info=vt.constant(1.0), non_sequences=x, n_steps=n)
    last = y[-1]                    # x ** 4
    g = vmc.grad(last, x)
    gg = vmc.grad(g, x)
    f = vmc.function([x], [last, g, gg])
    out = f(1.5)
    np.testing.assert_allclose(out, [1.5 ** 4, 4 * 1.5 ** 3, 12 * 1.5 ** 2])


def test_verify_grad_nested_scan():
    def fn(X, w):
        def row(r, w):
            inner, _ = scan(lambda v, acc, w: acc * w + v, sequences=r,
                            outputs_info=vt.constant(0.0), non_sequences=w)
            return inner[-1]
        out, _ = scan(row, sequences=X, non_sequences=w)
        return out
    verify_grad(fn, [RNG.standard_normal((3, 4)), np.asarray(0.8)])


def test_grad_through_shared_counter_carry():
    s = vmc.shared(np.asarray(1.0), name="s")
    x = vt.vector("x")
    y, updates = scan(lambda x_t: (x_t * s, {s: s * 2}), sequences=x)
    cost = y.sum()
    gx = vmc.grad(cost, x)
    f = vmc.function([x], [y, gx])
    out = f(np.ones(3))
    np.testing.assert_allclose(out[0], [1, 2, 4])
    np.testing.assert_allclose(out[1], [1, 2, 4])
    gs = vmc.grad(cost, s)          # d/ds of sum(x_t * s * 2**t)
    assert vmc.function([x], gs)(np.ones(3)) == pytest.approx(7.0)


def test_grad_with_random_draws_inside():
    from vmc.tensor.random import RandomStream
    pytest.importorskip("vmc.thunks.numpy_thunks_random")
    srng = RandomStream(3)
    w = vt.scalar("w")
    noise_out, updates = scan(lambda h, w: h * w + srng.normal(0.0, 1.0),
                              outputs_info=vt.constant(0.0), non_sequences=w, n_steps=4)
    cost = noise_out[-1]
    g = vmc.grad(cost, w)
    (rng,) = list(updates)
    f = vmc.function([w], [noise_out, g], no_default_updates=True)
    vals, gw = f(0.5)
    # h_t = w h_{t-1} + e_t; recover e_t and differentiate by hand.
    e = [vals[0]] + [vals[t] - 0.5 * vals[t - 1] for t in range(1, 4)]
    ref = sum(e[t] * (3 - t) * 0.5 ** (2 - t) for t in range(3))
    assert gw == pytest.approx(ref)


def test_jacobian_unknown_length():
    from vmc.gradient import jacobian
    x = vt.vector("x")
    J = jacobian(vt.tanh(x) * x.sum(), x)
    v = RNG.standard_normal(4)
    ref = np.diag((1 - np.tanh(v) ** 2) * v.sum()) + np.tanh(v)[:, None]
    np.testing.assert_allclose(vmc.function([x], J)(v), ref, rtol=1e-12)
