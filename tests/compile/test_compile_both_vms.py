"""The same functions on the Python VM and on the Cython VM give the same
results and leave the same shared values. The Cython VM must be built: the
test checks it got one, so that it never compares the Python VM with itself."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.compile.function import CFunction, PyFunction
from vmc.ifelse import ifelse

assert CFunction is not None, "the Cython VM is not built (pip install -e .)"

def build_mlp():
    rng = np.random.default_rng(5)
    xs, ts = vt.dmatrix("X"), vt.lvector("t")
    W = vmc.shared(rng.standard_normal((4, 3)), name="W")
    p = vt.softmax(vt.tanh(vt.dot(xs, W)))
    loss = -vt.log(p[vt.arange(ts.shape[0]), ts]).mean()
    g = vmc.grad(loss, W)
    args = [rng.standard_normal((6, 4)), rng.integers(0, 3, 6)]
    return [xs, ts], [loss, p], [(W, W - 0.5 * g)], [W], args


def build_branches():
    c, x = vt.lscalar("c"), vt.dvector("x")
    acc = vmc.shared(np.zeros(3), name="acc")
    y = ifelse(c > 0, vt.exp(x) + acc, ifelse(c < -1, x * 3, x - 1))
    args = [[1, -5, 0], np.arange(3.0)]
    return [c, x], [y, y.sum()], [(acc, acc + y)], [acc], args


def build_views():
    m = vt.dmatrix("m")
    s = vmc.shared(np.ones((2, 3)), name="s")
    outs = [m.T, m[0] * 2, (m + s).sum(axis=1), s.T]
    return [m], outs, [(s, s * 1.5)], [s], [np.arange(6.0).reshape(2, 3) / 7]


@pytest.mark.parametrize("build", [build_mlp, build_branches, build_views])
@pytest.mark.parametrize("mode", ["fast_run", "None"])
def test_python_and_cython_vms_agree(build, mode):
    results = {}
    for linker in ("py", "cvm"):
        inputs, outputs, updates, shared, args = build()     # fresh shared values
        with vmc.config.change(linker=linker, optimizer=None if mode == "None" else mode):
            f = vmc.function(inputs, outputs, updates=updates)
        assert isinstance(f, CFunction if linker == "cvm" else PyFunction), type(f)
        runs = []
        calls = args[0] if isinstance(args[0], list) else [None]
        for k in range(3):
            call_args = list(args)
            if calls != [None]:
                call_args[0] = calls[k % len(calls)]
            runs.append([np.asarray(o).copy() for o in f(*call_args)])
        results[linker] = (runs, [s.get_value() for s in shared])
    (py_runs, py_shared), (c_runs, c_shared) = results["py"], results["cvm"]
    for a_run, b_run in zip(py_runs, c_runs):
        for a, b in zip(a_run, b_run):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for a, b in zip(py_shared, c_shared):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
