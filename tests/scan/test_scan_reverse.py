"""Reverse loops (the backward scan of a gradient), the cotangents a gradient
reads without a whole-trace copy, and trace buffers reused between calls."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gradient import verify_grad
from vmc.scan import scan
from vmc.scan.op import Scan, ScanInfo, build_scan
from vmc.scan.utils import placeholder
from vmc.tensor.subtensor import IncSubtensor

from .oracles import rnn_sum_bptt

RNG = np.random.default_rng(7)


def _rnn(X, W, U, b, h0, taps=False):
    if taps:    # h_t = tanh(x_t W + h_{t-2} U + h_{t-1} + b): lag 2
        H, _ = scan(lambda x, h2, h1, W, U, b: vt.tanh(vt.dot(x, W) + vt.dot(h2, U) + h1 + b),
                    sequences=X, outputs_info=dict(initial=h0, taps=[-2, -1]),
                    non_sequences=[W, U, b])
    else:
        H, _ = scan(lambda x, h, W, U, b: vt.tanh(vt.dot(x, W) + vt.dot(h, U) + b),
                    sequences=X, outputs_info=h0, non_sequences=[W, U, b])
    return H


def _data(steps=5, batch=3, n=4):
    return (RNG.standard_normal((steps, batch, n)), RNG.standard_normal((n, n)) * 0.4,
            RNG.standard_normal((n, n)) * 0.4, RNG.standard_normal(n) * 0.1)


def _nodes(f):
    return f.fgraph.toposort() if hasattr(f, "fgraph") else f.maker.fgraph.toposort()


def _inputs():
    return vt.tensor3("X"), vt.matrix("W"), vt.matrix("U"), vt.vector("b"), vt.matrix("h0")


@pytest.mark.parametrize("loss_name", ["sum", "mean", "last_and_sum", "weighted"])
def test_rnn_losses_verify_grad(loss_name):
    losses = {"sum": lambda H: H.sum(), "mean": lambda H: H.mean(),
              "last_and_sum": lambda H: (H[-1] ** 2).sum() + H.sum(),
              "weighted": lambda H: (H * vt.arange(H.shape[0]).dimshuffle(0, "x", "x")).sum()}
    X, W, U, b = _data()

    def fn(X_, W_, U_):
        return losses[loss_name](_rnn(X_, W_, U_, vt.constant(b), vt.constant(np.zeros((3, 4)))))
    verify_grad(fn, [X, W, U])


def test_lag_two_sum_loss_gradient_reaches_initial_values():
    X, W, U, b = _data()

    def fn(X_, U_, h0):
        return _rnn(X_, vt.constant(W), U_, vt.constant(b), h0, taps=True).sum()
    verify_grad(fn, [X, U, RNG.standard_normal((2, 3, 4)) * 0.3])


def test_sum_of_nit_output_gradient():
    def fn(x, w):
        (h, y), _ = scan(lambda x_t, h, w: (vt.tanh(h * w + x_t), vt.sin(h * x_t)),
                         sequences=x, outputs_info=[vt.constant(np.zeros(3)), None],
                         non_sequences=w)
        return y.sum() + h.mean()
    verify_grad(fn, [RNG.standard_normal((5, 3)), np.asarray(0.7)])


def test_rnn_sum_gradient_reads_no_trace_sized_cotangent_and_runs_reverse():
    X, W, U, b, h0 = _inputs()
    H = _rnn(X, W, U, b, h0)
    cost = H.sum()
    f = vmc.function([X, W, U, b, h0], [cost] + vmc.grad(cost, [W, U]))
    nodes = _nodes(f)
    assert not any(isinstance(n.op, IncSubtensor) for n in nodes)
    scans = [n for n in nodes if isinstance(n.op, Scan)]
    assert sorted(n.op.info.reverse for n in scans) == [False, True]
    x, w, u, bb = _data()
    h = np.zeros((3, 4))
    out = f(x, w, u, bb, h)
    hs, gw, gu = rnn_sum_bptt(x, w, u, bb, h)
    np.testing.assert_allclose(out[0], np.sum(hs), rtol=1e-12)
    np.testing.assert_allclose(out[1], gw, rtol=1e-10)
    np.testing.assert_allclose(out[2], gu, rtol=1e-10)


def _reverse_loop(x, c0):
    """c <- 2 c + x_t over t = n-1 .. 0; y_t = c after step t (a nit)."""
    xt = placeholder(vt.scalar().type, "x_t")
    c = placeholder(vt.scalar().type, "c")
    new = 2.0 * c + xt
    _, nits, (final,) = build_scan([(xt, x)], [], [new], [(c, c0, new)], None, reverse=True)
    return nits[0], final          # (then the hidden record of c, for the gradient)


def test_reverse_loop_order_and_index_order_trace():
    x, c0 = vt.vector("x"), vt.scalar("c0")
    y, final = _reverse_loop(x, c0)
    f = vmc.function([x, c0], [y, final])
    v = np.array([1.0, 2.0, 3.0])
    ys, fin = f(v, 0.5)
    # t = 2: 2*0.5+3 = 4; t = 1: 2*4+2 = 10; t = 0: 2*10+1 = 21
    np.testing.assert_allclose(ys, [21.0, 10.0, 4.0])
    assert fin == 21.0
    with vmc.config.change(linker="py"):
        g = vmc.function([x, c0], [y, final])
    np.testing.assert_allclose(g(v, 0.5)[0], [21.0, 10.0, 4.0])


def test_reverse_loop_gradient_runs_forward():
    def fn(x, c0):
        y, final = _reverse_loop(x, c0)
        return (y * vt.arange(1, 5)).sum() + final ** 2
    verify_grad(fn, [RNG.standard_normal(4), np.asarray(0.3)])


def test_reverse_loop_cannot_keep_last_entries():
    with pytest.raises(ValueError, match="reverse"):
        ScanInfo(n_seqs=1, rec_taps=(), n_nit=1, n_hidden=0, n_carry=0, n_nonseq=0,
                 until=False, keep=(1,), infer_steps=True, reverse=True)
