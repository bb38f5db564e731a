"""A full training step on the device against the same step on the CPU: an MLP
with a softmax cross-entropy, float32, parameters in shared variables that stay
on the device; everything but the edges runs there."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt

from .helpers import ops_on

RNG = np.random.default_rng(4)


def _mlp(sizes, params):
    x, y = vt.fmatrix("x"), vt.lvector("y")
    shared = [vmc.shared(p.copy(), name=f"p{i}") for i, p in enumerate(params)]
    h = x
    for i in range(len(shared) // 2 - 1):
        h = vt.tanh(vt.dot(h, shared[2 * i]) + shared[2 * i + 1])
    p = vt.softmax(vt.dot(h, shared[-2]) + shared[-1])
    loss = -vt.mean(vt.log(p)[vt.arange(y.shape[0]), y])
    acc = vt.mean(vt.eq(vt.argmax(p, axis=1), y))
    grads = vmc.grad(loss, shared)
    step = vmc.function([x, y], [loss, acc],
                        updates=[(s, s - np.float32(0.1) * g) for s, g in zip(shared, grads)])
    return step, shared


@pytest.mark.parametrize("sizes", [[20, 32, 10], [30, 64, 48, 7]])
def test_training_steps_match_the_cpu(device, sizes):
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params += [(RNG.standard_normal((a, b)) / np.sqrt(a)).astype("float32"),
                   np.zeros(b, "float32")]
    with vmc.config.change(device=device):
        step_d, shared_d = _mlp(sizes, params)
    step_c, shared_c = _mlp(sizes, params)
    on, off = ops_on(step_d, device)
    # only the transfers of the batch touch the host
    assert set(off) <= {"GpuFromHost", "HostFromGpu", "ShapeI"}, off
    for _ in range(3):
        xv = RNG.standard_normal((64, sizes[0])).astype("float32")
        yv = RNG.integers(0, sizes[-1], 64)
        got, want = step_d(xv, yv), step_c(xv, yv)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-4)
        assert abs(got[1] - want[1]) <= 1 / 64 + 1e-12     # a near-tie may flip one argmax
    for a, b in zip(shared_d, shared_c):
        np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=1e-4, atol=1e-5)
