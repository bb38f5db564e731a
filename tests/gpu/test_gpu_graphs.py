"""config.gpu_graphs: a function's device work captured on its second call and
replayed after (CUDA graphs; on OpenCL the recorded launches are re-enqueued,
which checks the same capture and replay logic): results equal the function
without graphs, call after call, with new batches, in-place updates, and a
shape change that stops the replay."""
import warnings

import numpy as np
import pytest

import vmc
import vmc.tensor as vt

RNG = np.random.default_rng(5)


def _step(device, graphs, params):
    with vmc.config.change(device=device, gpu_graphs=graphs):
        x, y = vt.fmatrix("x"), vt.lvector("y")
        w = [vmc.shared(p.copy(), name=f"p{i}") for i, p in enumerate(params)]
        h = vt.tanh(vt.dot(x, w[0]) + w[1])
        p = vt.softmax(vt.dot(h, w[2]) + w[3])
        loss = -vt.mean(vt.log(p)[vt.arange(y.shape[0]), y])
        grads = vmc.grad(loss, w)
        lr = vt.fscalar("lr")
        f = vmc.function([x, y, lr], [loss, vt.argmax(p, axis=1)],
                         updates=[(s, s - lr * g) for s, g in zip(w, grads)])
    return f, w


def test_replayed_steps_equal_the_plain_ones(device):
    params = [RNG.standard_normal((12, 16)).astype("float32") * 0.3, np.zeros(16, "float32"),
              RNG.standard_normal((16, 5)).astype("float32") * 0.3, np.zeros(5, "float32")]
    f, w = _step(device, True, params)
    g, v = _step(device, False, params)
    assert f.program.graph_state is not None and g.program.graph_state is None
    for call in range(6):
        xv = RNG.standard_normal((8, 12)).astype("float32")
        yv = RNG.integers(0, 5, 8)
        got, want = f(xv, yv, np.float32(0.1)), g(xv, yv, np.float32(0.1))
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
        np.testing.assert_array_equal(got[1], want[1])
    state = f.program.graph_state
    assert state.mode == 2 and state.segments          # replaying
    for a, b in zip(w, v):
        np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=1e-5, atol=1e-6)
    # a new learning rate (a host value the graph baked in) stops the replay
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        xv = RNG.standard_normal((8, 12)).astype("float32")
        np.testing.assert_allclose(f(xv, yv, np.float32(0.2))[0], g(xv, yv, np.float32(0.2))[0],
                                   rtol=1e-5)
    assert state.mode == 3


def test_a_new_batch_size_stops_the_replay(device):
    params = [np.ones((3, 4), "float32"), np.zeros(4, "float32"), np.ones((4, 2), "float32"),
              np.zeros(2, "float32")]
    f, _ = _step(device, True, params)
    g, _ = _step(device, False, params)
    for n in (5, 5, 5, 7, 7):
        xv = RNG.standard_normal((n, 3)).astype("float32")
        yv = RNG.integers(0, 2, n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = f(xv, yv, np.float32(0.1))
        np.testing.assert_allclose(got[0], g(xv, yv, np.float32(0.1))[0], rtol=1e-5)
