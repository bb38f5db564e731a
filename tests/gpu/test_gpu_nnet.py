"""Softmax, log-softmax, cross-entropy (forward and gradient), argmax on the
device against the CPU."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt

from .helpers import assert_close, compile_both, ops_on

RNG = np.random.default_rng(2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_log_softmax_and_their_gradients(device, dtype):
    x = vt.matrix("x", dtype=dtype)
    v = vt.vector("v", dtype=dtype)
    sm, lsm = vt.softmax(x), vt.log_softmax(x)
    cost = (sm * vt.arange(x.shape[1])).sum() + (lsm * lsm).sum()
    outs = [sm, lsm, vt.softmax(x, axis=0), vt.softmax(v), vmc.grad(cost, x)]
    f, g = compile_both([x, v], outs, device)
    on, _ = ops_on(f, device)
    assert "Softmax" in on and "LogSoftmax" in on
    xv = (RNG.standard_normal((7, 300)) * 4).astype(dtype)
    vv = RNG.standard_normal(5).astype(dtype)
    assert_close(f(xv, vv), g(xv, vv))
    xv[2, 5] = np.nan
    got, want = f(xv, vv), g(xv, vv)
    assert np.isnan(got[0][2]).all() and np.isnan(want[0][2]).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_crossentropy_forward_gradient_and_argmax(device, dtype):
    x, y = vt.matrix("x", dtype=dtype), vt.lvector("y")
    p = vt.softmax(x)
    loss = -vt.mean(vt.log(p)[vt.arange(y.shape[0]), y])
    outs = [loss, vmc.grad(loss, x), vt.argmax(p, axis=1), vt.argmax(x, axis=0),
            vt.argmin(x, axis=1), vt.argmax(x)]
    f, g = compile_both([x, y], outs, device)
    on, _ = ops_on(f, device)
    assert "CrossentropySoftmaxArgmax" in on and "CrossentropySoftmaxDx" in on
    xv = RNG.standard_normal((33, 10)).astype(dtype)
    xv[3, 4] = xv[3, 7] = 5          # a tie: the first index wins
    yv = RNG.integers(0, 10, 33)
    assert_close(f(xv, yv), g(xv, yv))


def test_target_out_of_range_is_an_error(device):
    x, y = vt.fmatrix("x"), vt.lvector("y")
    loss = vt.nnet.crossentropy_softmax(x, y).sum()
    with vmc.config.change(device=device):
        f = vmc.function([x, y], loss)
    xv = RNG.standard_normal((4, 3)).astype("float32")
    with pytest.raises(IndexError, match="outside"):
        f(xv, np.array([0, 1, 3, 2]))
    np.testing.assert_allclose(f(xv, np.array([0, 1, 2, 2])),
                               -np.log(np.exp(xv) / np.exp(xv).sum(1, keepdims=True))
                               [np.arange(4), [0, 1, 2, 2]].sum(), rtol=1e-5)
