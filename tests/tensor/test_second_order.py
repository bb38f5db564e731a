"""Gradients of gradients: the pullbacks are built from differentiable ops, so
second derivatives check out against finite differences of the gradient."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gradient import verify_grad

gen = np.random.default_rng(4)
A = gen.standard_normal((3, 3)) + 3 * np.eye(3)
SPD = A @ A.T

CASES = {
    "tile": lambda x: vt.tile(x, (2, 1)) ** 2,
    "repeat": lambda x: vt.repeat(x, 2, axis=0) ** 3,
    "split": lambda x: vt.split(x, [1, 2], 2)[1] ** 2,
    "diag": lambda x: vt.diag(x) ** 3,
    "matmul": lambda x: vt.matmul(x[None], x),
    "tensordot": lambda x: vt.tensordot(x, x ** 2, 1),
    "solve": lambda x: vt.linalg.solve(x, x[0]),
    "cholesky": lambda x: vt.linalg.cholesky(vt.dot(x, x.T)),
    "det": lambda x: vt.linalg.det(x),
    "set_subtensor": lambda x: vt.set_subtensor(x[[0, 0]], x[1] ** 2) ** 2,
    "softmax": lambda x: vt.softmax(x) * x,
    "logsumexp": lambda x: vt.logsumexp(x, axis=1),
    "max": lambda x: vt.max(x, axis=1) ** 2,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_grad_of_grad(name):
    fn = CASES[name]
    verify_grad(lambda x: vmc.grad(vt.sum(fn(x)), x), [A], abs_tol=1e-4, rel_tol=1e-4)


def test_hessian_of_a_quadratic_form():
    x = vt.vector(shape=(3,))
    h = vmc.gradient.hessian(vt.dot(x, vt.dot(vt.constant(SPD), x)), x)
    f = vmc.function([x], h, on_unused_input="ignore")     # the Hessian is constant
    np.testing.assert_allclose(f(np.ones(3)), 2 * SPD, rtol=1e-12)
