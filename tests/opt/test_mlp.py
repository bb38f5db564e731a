"""The MLP training step (784-500-10, tanh, softmax, mean NLL, SGD updates in
the function, batch 128): what it optimizes to, and that it computes what the
unoptimized graph computes."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.tensor.blas_ops import Gemm
from vmc.tensor.fused import FusedElemwise
from vmc.tensor.nnet import CrossentropySoftmaxArgmax, CrossentropySoftmaxDx
from vmc.tensor.math import Dot
from vmc.tensor.nnet import Softmax

from opt_helpers import absent, nodes

# A rewrite loop must fail the test, not just slow it down.
pytestmark = pytest.mark.filterwarnings("error:vmc.opt:UserWarning")


def mlp_step(dtype, mode, sizes=(784, 500, 10), seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        lim = np.sqrt(6.0 / (n_in + n_out))
        params.append(vmc.shared(rng.uniform(-lim, lim, (n_in, n_out)).astype(dtype)))
        params.append(vmc.shared(np.zeros(n_out, dtype)))
    x = vt.matrix("x", dtype=dtype)
    y = vt.vector("y", dtype="int64")
    h = x
    for k in range(0, len(params) - 2, 2):
        h = vt.tanh(vt.dot(h, params[k]) + params[k + 1])
    p = vt.softmax(vt.dot(h, params[-2]) + params[-1])
    loss = vt.mean(vt.categorical_crossentropy(p, y))
    grads = vmc.grad(loss, params)
    f = vmc.function([x, y], loss, updates=[(w, w - 0.1 * g) for w, g in zip(params, grads)],
                     mode=mode)
    return f, params


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 2e-4)])
def test_mlp_step_optimizes_and_matches_unoptimized(dtype, rtol):
    rng = np.random.default_rng(1)
    xv = rng.standard_normal((128, 784)).astype(dtype)
    yv = rng.integers(0, 10, 128)
    f, params = mlp_step(dtype, "fast_run")
    g, ref_params = mlp_step(dtype, "None")
    types = [type(n.op) for n in nodes(f)]
    assert types.count(Gemm) == 2                          # both weight updates
    assert types.count(Dot) == 3                           # 2 forward, 1 backward
    assert CrossentropySoftmaxArgmax in types and CrossentropySoftmaxDx in types
    assert Softmax not in types
    absent(f, "IncSubtensor")
    assert types.count(FusedElemwise) >= 3
    assert not any(type(n.op).__name__ == "Elemwise" for n in nodes(f))
    w0 = params[0].get_value(borrow=True)
    for _ in range(2):
        np.testing.assert_allclose(f(xv, yv), g(xv, yv), rtol=rtol)
    for a, b in zip(params, ref_params):
        np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=rtol, atol=rtol * 1e-2)
    assert params[0].get_value(borrow=True) is w0          # the gemm updated w in place
