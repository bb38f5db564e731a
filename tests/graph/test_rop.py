"""Forward mode: ``Rop`` against central differences of the function, ``Lop``
against ``grad``, and Hessian-vector products ``Rop(grad(cost, x), x, v)``
against central differences of the gradient, through scan and ifelse."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gradient import Lop, Rop
from vmc.ifelse import ifelse

GEN = np.random.default_rng(7)
X0 = GEN.standard_normal((3, 4))
V0 = GEN.standard_normal((3, 4))
M = GEN.standard_normal((4, 2))


def _fd(f, x, v, eps=1e-6):
    return (np.asarray(f(x + eps * v)) - np.asarray(f(x - eps * v))) / (2 * eps)


CASES = {
    "elemwise": lambda x: vt.exp(x) * vt.tanh(x) + x ** 2 / (1 + x * x),
    "broadcast": lambda x: x + vt.sum(x, axis=0) * vt.constant(np.arange(4.0)),
    "dot": lambda x: vt.dot(vt.tanh(x), vt.constant(M)),
    "softmax": lambda x: vt.softmax(x),
    "log_softmax": lambda x: vt.log_softmax(x, axis=0),
    "reductions": lambda x: vt.max(x, axis=1) + vt.mean(x ** 2, axis=1) + vt.prod(x, axis=1),
    "subtensor": lambda x: vt.set_subtensor(x[1:, :2], x[:2, 2:] ** 2)[::-1],
    "reshape": lambda x: vt.reshape(x.T, (2, 6)) ** 3,
    "concat": lambda x: vt.concatenate([x, vt.sin(x)], axis=1),
    "solve": lambda x: vt.linalg.solve(vt.dot(x.T, x) + vt.eye(4), x[0]),
    "logsumexp": lambda x: vt.logsumexp(x, axis=0),
    "ifelse": lambda x: ifelse(vt.sum(x) > 0, vt.exp(x), vt.sin(x) * 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rop_matches_central_differences(name):
    fn = CASES[name]
    x, v = vt.dmatrix("x"), vt.dmatrix("v")
    out = fn(x)
    f = vmc.function([x], out)
    jv = vmc.function([x, v], Rop(out, x, v))
    for x0 in (X0, -X0):            # both branches of the ifelse
        np.testing.assert_allclose(jv(x0, V0), _fd(f, x0, V0), rtol=1e-6, atol=1e-7)


def test_rop_lists_and_disconnected():
    x, y, v, w = vt.dvector("x"), vt.dvector("y"), vt.dvector("v"), vt.dvector("w")
    outs = Rop([x * y, vt.exp(x)], [x, y], [v, w])
    f = vmc.function([x, y, v, w], outs)
    a, b, c, d = (GEN.standard_normal(3) for _ in range(4))
    r1, r2 = f(a, b, c, d)
    np.testing.assert_allclose(r1, c * b + a * d)
    np.testing.assert_allclose(r2, np.exp(a) * c)
    with pytest.raises(ValueError, match="does not depend"):
        Rop(y * 2, x, v)
    z = Rop(y * 2, x, v, disconnected_outputs="ignore")
    np.testing.assert_array_equal(vmc.function([y], z)(b), np.zeros(3))


def test_lop_is_grad_with_known_output_gradients():
    x, u = vt.dmatrix("x"), vt.dvector("u")
    out = vt.dot(vt.tanh(x), vt.constant(M))[:, 0]
    f = vmc.function([x, u], Lop(out, x, u))
    uu = GEN.standard_normal(3)
    g = vmc.function([x], vmc.grad(vt.sum(out * vt.constant(uu)), x))
    np.testing.assert_allclose(f(X0, uu), g(X0))


def _hvp_check(cost_fn, x0, v0, rtol=1e-6, atol=1e-8):
    x, v = vt.tensor("float64", (None,) * x0.ndim, "x"), vt.tensor("float64",
                                                                  (None,) * x0.ndim, "v")
    g = vmc.grad(cost_fn(x), x)
    grad_f = vmc.function([x], g)
    hv = vmc.function([x, v], Rop(g, x, v))
    np.testing.assert_allclose(hv(x0, v0), _fd(grad_f, x0, v0), rtol=rtol, atol=atol)


def test_hessian_vector_product_mlp():
    w2 = vt.constant(M)
    _hvp_check(lambda x: vt.sum(vt.log_softmax(vt.dot(vt.tanh(x), w2))[:, 0]), X0, V0)


def test_hessian_vector_product_through_ifelse():
    def cost(x):
        return vt.sum(ifelse(vt.sum(x) > 0, vt.exp(x) * x, vt.sin(x) ** 3))
    _hvp_check(cost, X0, V0)
    _hvp_check(cost, -X0, V0)


def test_hessian_vector_product_through_scan():
    W = vt.constant(GEN.standard_normal((4, 4)) * 0.4)

    def cost(x):                          # x: (steps, 4) inputs of a tanh RNN
        h, _ = vmc.scan(lambda xt, h: vt.tanh(vt.dot(h, W) + xt), sequences=x,
                        outputs_info=vt.zeros((4,), dtype="float64"))
        return vt.sum(h[-1] ** 2) + vt.sum(h ** 3)
    _hvp_check(cost, GEN.standard_normal((5, 4)) * 0.5, GEN.standard_normal((5, 4)))


def test_user_r_op_is_used():
    calls = []

    class Twice(vmc.Op):
        __props__ = ()

        def make_node(self, x):
            x = vt.as_tensor_variable(x)
            return vmc.Apply(self, [x], [x.type()])

        def perform(self, node, inputs, out):
            out[0][0] = 2 * inputs[0]

        def R_op(self, inputs, eval_points):
            calls.append(1)
            return [2 * eval_points[0]]

    x, v = vt.dvector("x"), vt.dvector("v")
    f = vmc.function([x, v], Rop(Twice()(x), x, v), on_unused_input="ignore")
    np.testing.assert_allclose(f(np.ones(2), np.array([1.0, 3.0])), [2.0, 6.0])
    assert calls
