"""vmc.grad: wrt lists, grad of grad, consider_constant, disconnected inputs,
known_grads, errors; jacobian and hessian against numpy."""
import warnings

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gradient import DisconnectedInputError, hessian, jacobian, verify_grad
from vmc.graph import NullGradient, NullGradientError
from vmc.graph.basic import Apply, Op

from graph_dummy_ops import Fn

RNG = np.random.default_rng(0)


def values(inputs, outputs, *args):
    return vmc.function(inputs, outputs, on_unused_input="ignore")(*args)


def test_grad_wrt_single_and_list():
    x, y = vt.dvector("x"), vt.dvector("y")
    cost = (x * y + vt.exp(x)).sum()
    xv, yv = RNG.standard_normal(4), RNG.standard_normal(4)
    gx = vmc.grad(cost, x)
    assert gx.type == x.type
    np.testing.assert_allclose(values([x, y], gx, xv, yv), yv + np.exp(xv))
    gx2, gy = vmc.grad(cost, [x, y])
    rx, ry = values([x, y], [gx2, gy], xv, yv)
    np.testing.assert_allclose(rx, yv + np.exp(xv))
    np.testing.assert_allclose(ry, xv)
    (only,) = vmc.grad(cost, (y,))
    np.testing.assert_allclose(values([x, y], only, xv, yv), xv)


def test_grad_of_grad():
    x = vt.dscalar("x")
    y = x ** 3 + vt.sin(x)
    d1 = vmc.grad(y, x)
    d2 = vmc.grad(d1, x)
    d3 = vmc.grad(d2, x)
    r = values([x], [d1, d2, d3], 0.7)
    np.testing.assert_allclose(r, [3 * 0.49 + np.cos(0.7), 6 * 0.7 - np.sin(0.7),
                                   6 - np.cos(0.7)])


def test_grad_of_grad_vector_mixed():
    x, w = vt.dvector("x"), vt.dvector("w")
    cost = (vt.tanh(x * w) ** 2).sum()
    gw = vmc.grad(cost, w)
    mixed = vmc.grad(gw.sum(), x)
    xv, wv = RNG.standard_normal(3), RNG.standard_normal(3)
    t = np.tanh(xv * wv)
    # d/dw (t^2) = 2 t (1 - t^2) x; d/dx of that
    dt = (1 - t ** 2) * wv
    expected = 2 * dt * (1 - t ** 2) * xv - 4 * t * t * dt * xv + 2 * t * (1 - t ** 2)
    np.testing.assert_allclose(values([x, w], mixed, xv, wv), expected, rtol=1e-10)


def test_consider_constant():
    x = vt.dscalar("x")
    a = x * x
    cost = a * x
    assert values([x], vmc.grad(cost, x), 2.0) == pytest.approx(12.0)
    # with a held constant: d/dx (a * x) = a = x^2
    assert values([x], vmc.grad(cost, x, consider_constant=[a]), 2.0) == pytest.approx(4.0)


def test_disconnected_inputs():
    x, y = vt.dscalar("x"), vt.dvector("y")
    cost = x * 2
    with pytest.raises(DisconnectedInputError, match="does not depend on y"):
        vmc.grad(cost, [x, y])
    with pytest.warns(UserWarning, match="does not depend on y"):
        gx, gy = vmc.grad(cost, [x, y], disconnected_inputs="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gx, gy = vmc.grad(cost, [x, y], disconnected_inputs="ignore")
    rx, ry = values([x, y], [gx, gy], 1.0, np.ones(3))
    assert rx == 2.0 and ry.tolist() == [0.0, 0.0, 0.0]
    gx, gy = vmc.grad(cost, [x, y], disconnected_inputs="ignore", return_disconnected="none")
    assert gy is None
    # a wrt held constant is disconnected too
    with pytest.raises(DisconnectedInputError):
        vmc.grad(cost, x, consider_constant=[x])


def test_known_grads():
    x = vt.dvector("x")
    h = vt.tanh(x)
    cost = (h * 3).sum()
    xv = RNG.standard_normal(3)
    gh = vt.dvector("gh")
    # the gradient w.r.t. h is given: only the part below h is built
    gx = vmc.grad(None, x, known_grads={h: gh})
    ghv = RNG.standard_normal(3)
    np.testing.assert_allclose(values([x, gh], gx, xv, ghv), ghv * (1 - np.tanh(xv) ** 2))
    # with a cost as well, both contributions add up
    gx2 = vmc.grad(cost, x, known_grads={h: gh})
    np.testing.assert_allclose(values([x, gh], gx2, xv, ghv),
                               (ghv + 3) * (1 - np.tanh(xv) ** 2))
    # a value is taken as a constant gradient
    gx3 = vmc.grad(None, x, known_grads={h: np.ones(3)})
    np.testing.assert_allclose(values([x], gx3, xv), 1 - np.tanh(xv) ** 2)
    with pytest.raises(ValueError, match="give a cost or known_grads"):
        vmc.grad(None, x)


def test_cost_must_be_a_scalar_variable():
    x = vt.dvector("x")
    with pytest.raises(TypeError, match="cost must be a scalar"):
        vmc.grad(x * 2, x)
    with pytest.raises(TypeError, match="cost must be a variable"):
        vmc.grad(3.0, x)
    with pytest.raises(TypeError, match="wrt must be variables"):
        vmc.grad(x.sum(), [x, 3.0])


class NoGrad(Op):
    """An op whose gradient is undefined for its input."""

    def make_node(self, x):
        return Apply(self, [x], [x.type.make_variable()])

    def pullback(self, inputs, outputs, grads):
        return [NullGradient("NoGrad has none")]


def test_null_gradient_raises_or_is_skipped():
    x = vt.dscalar("x")
    cost = NoGrad()(x) + x
    with pytest.raises(NullGradientError, match="NoGrad has none"):
        vmc.grad(cost, x)
    g = vmc.grad(cost, x, null_gradients="return")
    assert values([x], g, 1.0) == 1.0


def test_grad_through_dummy_ops_sums_paths():
    # Fn's pullback hands each input the output gradient times k: along two
    # paths of k=2 and one of k=3 the gradient is 2*2 + 3.
    x = vt.dscalar("x")
    two, three = Fn("two", k=2.0), Fn("three", k=3.0)
    y = three(two(two(x)), x)
    assert values([x], vmc.grad(y, x), 1.0) == pytest.approx(3 * 2 * 2 + 3)


def test_jacobian_against_numpy():
    x = vt.dvector("x", shape=(3,))
    A = RNG.standard_normal((4, 3))
    y = vt.tanh(vt.dot(vt.constant(A), x))
    J = jacobian(y, x)
    xv = RNG.standard_normal(3)
    t = np.tanh(A @ xv)
    np.testing.assert_allclose(values([x], J, xv), (1 - t ** 2)[:, None] * A, rtol=1e-10)
    # a scalar expression gives its gradient
    Js = jacobian(y.sum(), x)
    np.testing.assert_allclose(values([x], Js, xv), ((1 - t ** 2)[:, None] * A).sum(0))


def test_hessian_against_numpy():
    x = vt.dvector("x", shape=(3,))
    M = RNG.standard_normal((3, 3))
    M = M + M.T
    cost = 0.5 * vt.dot(x, vt.dot(vt.constant(M), x)) + vt.exp(x).sum()
    H = hessian(cost, x)
    xv = RNG.standard_normal(3)
    np.testing.assert_allclose(values([x], H, xv), M + np.diag(np.exp(xv)), rtol=1e-10)


def test_verify_grad_accepts_right_and_rejects_wrong():
    verify_grad(lambda a, b: vt.tanh(a) * b, [RNG.standard_normal(4), RNG.standard_normal(4)])

    class Wrong(Op):
        def make_node(self, x):
            return Apply(self, [x], [x.type.make_variable()])

        def pullback(self, inputs, outputs, grads):
            return [grads[0] * 2]      # the op below is the identity: should be 1

    from vmc.thunks.registry import register
    register(Wrong)(lambda node, destroyable: lambda x: x.copy())
    from vmc.gradient import GradientError
    with pytest.raises(GradientError):
        verify_grad(lambda a: Wrong()(a), [RNG.standard_normal(3)])


def test_grad_graph_of_unrelated_inputs_has_no_waste():
    # Only the requested gradients are summed: a variable with many readers
    # does not get a second sum graph for the result.
    x = vt.dscalar("x")
    ys = [x * float(i) for i in range(1, 6)]
    cost = ys[0]
    for y in ys[1:]:
        cost = cost + y
    g = vmc.grad(cost, x)
    assert values([x], g, 1.0) == pytest.approx(15.0)
    from vmc.graph import toposort
    assert len(toposort([g])) < 40
