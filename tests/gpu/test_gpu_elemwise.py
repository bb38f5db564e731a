"""Fused elementwise kernels, reductions, transfers and device shared variables,
on each device against the CPU."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt

from .helpers import assert_close, compile_both, ops_on

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_expression_with_broadcast_and_strides(device, dtype):
    x, z = vt.matrix("x", dtype=dtype), vt.matrix("z", dtype=dtype)
    b = vt.vector("b", dtype=dtype)
    y = vt.exp(-x * x) * b + vt.tanh(z.T) * 0.5 - vt.sigmoid(x) / (1 + vt.abs(b))
    f, g = compile_both([x, z, b], [y, vt.log1p(vt.softplus(y)) ** 2], device)
    on, _ = ops_on(f, device)
    assert "FusedElemwise" in on
    xv, zv, bv = (RNG.standard_normal(s).astype(dtype) for s in ((5, 7), (7, 5), (7,)))
    assert_close(f(xv, zv, bv), g(xv, zv, bv))


def test_integer_and_boolean_elementwise(device):
    i, j = vt.lvector("i"), vt.lvector("j")
    out = [i // j, i % j, (i > j) & (j > 0), vt.switch(i > 0, i * 3, -j), vt.maximum(i, j)]
    f, g = compile_both([i, j], out, device)
    iv = RNG.integers(-20, 20, 50)
    jv = RNG.integers(1, 7, 50) * RNG.choice([-1, 1], 50)
    assert_close(f(iv, jv), g(iv, jv))


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2), -1])
def test_reductions(device, axis):
    x = vt.dtensor3("x")
    outs = [vt.sum(x, axis=axis), vt.max(x, axis=axis), vt.min(x, axis=axis),
            vt.mean(x, axis=axis), vt.sum(vt.exp(x) * 2, axis=axis)]
    f, g = compile_both([x], outs, device)
    xv = RNG.standard_normal((6, 33, 5))
    assert_close(f(xv), g(xv))


def test_long_reduction_splits_over_groups(device):
    x = vt.fvector("x")
    f, g = compile_both([x], [vt.sum(x * x), vt.max(x)], device)
    xv = RNG.standard_normal(300_001).astype("float32")
    got, want = f(xv), g(xv)
    np.testing.assert_allclose(got[0], np.sum(xv.astype(np.float64) ** 2), rtol=1e-5)
    assert got[1] == want[1]


def test_reduction_of_many_short_rows_and_columns(device):
    x = vt.fmatrix("x")
    f, g = compile_both([x], [x.sum(axis=0), x.sum(axis=1), vt.logsumexp(x, axis=1)], device)
    xv = RNG.standard_normal((4000, 9)).astype("float32")
    got, want = f(xv), g(xv)
    # float32 sums of 4000 terms in another order: compare with float64 sums,
    # within float32's rounding of the sum of magnitudes
    np.testing.assert_allclose(got[0], xv.astype(np.float64).sum(0),
                               atol=4000 * 6e-8 * np.abs(xv).sum(0).max())
    assert_close(got[1:], want[1:])


def test_scalar_inputs_are_passed_by_value(device):
    x, a = vt.fvector("x"), vt.fscalar("a")
    f, g = compile_both([x, a], x * a + x.shape[0], device)
    on, off = ops_on(f, device)
    assert "GpuFromHost" in on and on.count("GpuFromHost") == 1   # x only; a rides along
    xv = RNG.standard_normal(10).astype("float32")
    assert_close(f(xv, np.float32(3)), g(xv, np.float32(3)))


def test_shared_variables_live_on_the_device_and_update_in_place(on):
    from vmc.gpu.shared import GpuSharedVariable
    w0 = RNG.standard_normal((4, 3)).astype("float32")
    w = vmc.shared(w0.copy(), name="w")
    n = vmc.shared(np.int64(0), name="n")
    assert isinstance(w, GpuSharedVariable) and not isinstance(n, GpuSharedVariable)
    before = w.get_value(borrow=True, return_internal_type=True)
    x = vt.fmatrix("x")
    step = vmc.function([x], (w * x).sum(), updates=[(w, w - 0.5 * x), (n, n + 1)])
    on_dev, off = ops_on(step, on)
    assert "HostFromGpu" in on_dev and "GpuFromHost" in on_dev
    xv = RNG.standard_normal((4, 3)).astype("float32")
    loss = step(xv)
    np.testing.assert_allclose(loss, (w0 * xv).sum(), rtol=1e-5)
    np.testing.assert_allclose(w.get_value(), w0 - 0.5 * xv, rtol=1e-6)
    assert w.get_value(borrow=True, return_internal_type=True) is before   # in place
    assert n.get_value() == 1
    w.set_value(w0)
    np.testing.assert_array_equal(w.get_value(), w0)


def test_failed_call_leaves_shared_variables_unchanged(on):
    w0 = np.arange(6, dtype="float64").reshape(2, 3)
    w = vmc.shared(w0.copy(), name="w")
    x = vt.dmatrix("x")
    step = vmc.function([x], [], updates=[(w, w - x)])
    with pytest.raises(ValueError, match="shape"):
        step(np.ones((3, 3)))
    np.testing.assert_array_equal(w.get_value(), w0)
    step(np.ones((2, 3)))
    np.testing.assert_array_equal(w.get_value(), w0 - 1)


def test_borrowed_output_is_the_drivers_array(on):
    x = vt.fvector("x")
    f = vmc.function([x], vmc.Out(vt.exp(x), borrow=True))
    xv = RNG.standard_normal(8).astype("float32")
    out = f(xv)
    assert type(out).__module__.startswith(("pyopencl", "pycuda"))
    np.testing.assert_allclose(out.get(), np.exp(xv), rtol=1e-6)


def test_views_and_shapes(device):
    x = vt.dtensor3("x")
    y = x.dimshuffle(2, "x", 0, 1).reshape((x.shape[2], -1)) * 2
    f, g = compile_both([x], [y, y.shape, x.T + 1], device)
    xv = RNG.standard_normal((2, 3, 4))
    assert_close(f(xv), g(xv))


def test_an_op_without_a_device_thunk_runs_on_the_cpu(device):
    x = vt.dmatrix("x")
    y = vt.linalg.det(vt.exp(x)) + 1      # det has no GPU thunk
    f, g = compile_both([x], y, device)
    on, off = ops_on(f, device)
    assert "Det" in off and "HostFromGpu" in on
    xv = RNG.standard_normal((3, 3))
    assert_close(f(xv), g(xv))


def test_shared_variable_read_by_a_cpu_function(device):
    with vmc.config.change(device=device):
        w = vmc.shared(np.ones(3), name="w")
    f = vmc.function([], w * 2, updates=[(w, w + 1)])
    np.testing.assert_array_equal(f(), [2, 2, 2])
    np.testing.assert_array_equal(w.get_value(), [2, 2, 2])


def test_profile_shows_device_times(on, tmp_path):
    x = vt.fmatrix("x")
    w = vmc.shared(RNG.standard_normal((30, 20)).astype("float32"), name="w")
    f = vmc.function([x], vt.tanh(vt.dot(x, w)).sum(), profile=True)
    for _ in range(3):
        f(RNG.standard_normal((50, 30)).astype("float32"))
    rows = {r.op_class: r for r in f.profile.rows()}
    assert rows["Dot"].kind == "GPU" and rows["Dot"].device_ns > 0
    assert rows["FusedElemwise"].device_ns > 0 and rows["HostFromGpu"].device_ns == 0
    import io
    buf = io.StringIO()
    f.profile.summary(file=buf)
    assert "device time (kernels, measured with events)" in buf.getvalue()
    import json
    trace = json.load(open(f.profile.to_chrome_trace(str(tmp_path / "t.json"))))
    assert any(e.get("tid") == 1 and e["ph"] == "X" for e in trace["traceEvents"])
