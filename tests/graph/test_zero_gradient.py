"""Pullbacks that return ZeroGradient (floor, ceil, round, sign, ``//``,
zero_grad): the input stays connected, no backward term is built; a scalar
op's NullGradient reaches grad() instead of reading as "disconnected"."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gradient import DisconnectedInputError, Rop, zero_grad
from vmc.graph import NullGradientError, toposort

RNG = np.random.default_rng(3)


def values(inputs, outputs, *args):
    return vmc.function(inputs, outputs, on_unused_input="ignore")(*args)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def test_floor_divided_penalty_builds_no_backward_pass():
    # The contractive autoencoder's cost (Deep Learning Tutorials, cA.py): its
    # Jacobian penalty is floor-divided, so only the reconstruction term has a
    # gradient; the (batch, visible, hidden) Jacobian must not be differentiated.
    x, W = vt.dmatrix("x"), vt.dmatrix("W")
    h = vt.sigmoid(vt.dot(x, W))
    J = vt.reshape(h * (1 - h), (2, 1, 4)) * vt.reshape(W, (1, 3, 4))
    cost = (vt.dot(h, W.T) ** 2).sum() + vt.sum(J ** 2) // 2
    gW = vmc.grad(cost, W)
    assert not [v for n in toposort([gW]) for v in n.outputs if v.type.ndim == 3]
    xv, Wv = RNG.standard_normal((2, 3)), RNG.standard_normal((3, 4))

    def recon(Wv):
        return ((_sigmoid(xv @ Wv) @ Wv.T) ** 2).sum()
    num, eps = np.zeros_like(Wv), 1e-6
    for i in np.ndindex(*Wv.shape):
        d = np.zeros_like(Wv)
        d[i] = eps
        num[i] = (recon(Wv + d) - recon(Wv - d)) / (2 * eps)
    got, c = values([x, W], [gW, cost], xv, Wv)
    np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-8)
    hv = _sigmoid(xv @ Wv)
    Jv = (hv * (1 - hv))[:, None, :] * Wv[None]
    assert c == pytest.approx(recon(Wv) + (Jv ** 2).sum() // 2)


@pytest.mark.parametrize("make", [
    lambda x: vt.floor(2 * x).sum(),
    lambda x: vt.round(vt.exp(x)).sum(),          # zero flows on through exp
    lambda x: (x.sum() ** 2) // 3,
    lambda x: vt.sign(x).sum(),
    lambda x: zero_grad(x).sum(),
], ids=["floor", "round_exp", "int_div", "sign", "zero_grad"])
def test_zero_gradient_is_connected_and_zero(make):
    x = vt.dvector("x")
    g = vmc.grad(make(x), x)        # no DisconnectedInputError: x is connected
    np.testing.assert_array_equal(values([x], g, np.array([1.25, -2.5])), [0.0, 0.0])


def test_zero_gradient_beside_other_terms():
    x, y = vt.dvector("x"), vt.dvector("y")
    xv = np.array([1.5, -2.0, 0.25])
    cost = (zero_grad(x) * x).sum() + (vt.ceil(x) * 3).sum() + (vt.sign(x) * x).sum()
    # d/dx: zero_grad(x) + 3 * 0 + sign(x)
    np.testing.assert_allclose(values([x], vmc.grad(cost, x), xv), xv + np.sign(xv))
    with pytest.raises(DisconnectedInputError):
        vmc.grad(vt.floor(x).sum(), y)
    # forward mode: d(floor(x) * x)[v] = floor(x) * v
    v = vt.dvector("v")
    vv = np.array([0.5, 2.0, -1.0])
    np.testing.assert_allclose(values([x, v], Rop(vt.floor(x) * x, x, v), xv, vv),
                               np.floor(xv) * vv)


def test_undefined_scalar_gradient_is_reported():
    # psi's own derivative is undefined here: grad() said "does not depend on x"
    x = vt.dvector("x")
    with pytest.raises(NullGradientError, match="psi"):
        vmc.grad(vt.psi(x).sum(), x)
    g = vmc.grad(vt.psi(x).sum() + (2 * x).sum(), x, null_gradients="return")
    np.testing.assert_array_equal(values([x], g, np.array([1.0, 2.0])), [2.0, 2.0])


def test_forward_mode_zero_and_undefined_derivatives():
    x, v = vt.dvector("x"), vt.dvector("v")
    xv, vv = np.array([1.5, -2.0]), np.array([0.5, 2.0])
    # floor's derivative is zero: connected (Rop used to say "does not depend")
    np.testing.assert_array_equal(values([x, v], Rop(vt.floor(x), x, v), xv, vv), [0, 0])
    with pytest.raises(NullGradientError, match="psi"):
        Rop(vt.psi(x), x, v)
