"""Scan with its body on the device, against the same scan on the CPU: sequences,
taps on previous outputs, non-sequences, carries, the gradient (a backward scan),
and an RNN training step."""
import numpy as np

import vmc
import vmc.tensor as vt

from .helpers import assert_close, compile_both, ops_on

RNG = np.random.default_rng(6)


def test_rnn_forward_and_gradient(device):
    X = vt.dtensor3("X")
    W = vt.dmatrix("W")
    U = vt.dmatrix("U")
    h0 = vt.dmatrix("h0")
    hs, _ = vmc.scan(lambda x, h, U, W: vt.tanh(vt.dot(x, W) + vt.dot(h, U)),
                     sequences=[X], outputs_info=[h0], non_sequences=[U, W])
    cost = (hs[-1] ** 2).sum()
    outs = [hs, cost] + vmc.grad(cost, [W, U, h0])
    f, g = compile_both([X, W, U, h0], outs, device)
    on, _ = ops_on(f, device)
    assert "Scan" in on
    args = [RNG.standard_normal((5, 3, 4)), RNG.standard_normal((4, 6)) * 0.5,
            RNG.standard_normal((6, 6)) * 0.5, RNG.standard_normal((3, 6))]
    assert_close(f(*args), g(*args))


def test_taps_and_sum_of_steps(device):
    x = vt.dvector("x")
    fib, _ = vmc.scan(lambda a, b: a + b, outputs_info=[dict(initial=x, taps=[-2, -1])],
                      n_steps=10)
    acc, _ = vmc.scan(lambda v, s: s + v * 2, sequences=[fib], outputs_info=[vt.zeros(())])
    f, g = compile_both([x], [fib, acc[-1]], device)
    assert_close(f(np.array([1.0, 1.0])), g(np.array([1.0, 1.0])))
