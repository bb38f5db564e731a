"""In-place safety, in-place updates, failure atomicity and the memory freed
after last use."""
import tracemalloc

import numpy as np
import pytest

import vmc
import vmc.tensor as vt

from compile_helpers import MODES, linker  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("linker")


def compile_(inputs, outputs, mode, **kw):
    with vmc.config.change(optimizer=None if mode == "None" else mode):
        return vmc.function(inputs, outputs, **kw)


@pytest.mark.parametrize("mode", MODES)
def test_arguments_are_never_overwritten(mode):
    x = vt.dmatrix("x")
    f = compile_([x], [x.T * 2, x + 1, vt.exp(x) * 3], mode)
    xv = np.arange(6.0).reshape(2, 3)
    keep = xv.copy()
    a, b, c = f(xv)
    np.testing.assert_array_equal(xv, keep)
    np.testing.assert_array_equal(a, keep.T * 2)
    np.testing.assert_array_equal(b, keep + 1)
    np.testing.assert_allclose(c, np.exp(keep) * 3)
    v = vt.dvector("v")
    g = compile_([v], (v + 1) * 2 - v, mode)
    vv = np.ones(3)
    g(vv)
    np.testing.assert_array_equal(vv, np.ones(3))


@pytest.mark.parametrize("mode", MODES)
def test_mutable_input_may_be_overwritten_but_the_result_is_right(mode):
    x = vt.dvector("x")
    f = compile_([vmc.In(x, mutable=True)], vt.exp(x + 1) * 2, mode)
    np.testing.assert_allclose(f(np.zeros(3)), 2 * np.exp(np.ones(3)))


@pytest.mark.parametrize("mode", MODES)
def test_constants_and_shared_values_read_later_are_never_overwritten(mode):
    v = vt.dvector("v")
    c = vt.constant(np.ones(3))
    s = vmc.shared(np.ones(3), name="s")
    f = compile_([v], [(c * 2) + v, vt.exp(s) + v, s * 3, c + 0], mode)
    for _ in range(2):
        r = f(np.ones(3))
    np.testing.assert_array_equal(c.data, np.ones(3))
    np.testing.assert_array_equal(s.get_value(), np.ones(3))
    np.testing.assert_allclose(r[1], np.e + 1)
    np.testing.assert_array_equal(r[2], [3, 3, 3])
    np.testing.assert_array_equal(r[3], [1, 1, 1])


@pytest.mark.parametrize("mode", MODES)
def test_outputs_viewing_shared_values_are_not_changed_by_updates(mode):
    w = vmc.shared(np.arange(6.0).reshape(2, 3), name="w")
    f = compile_([], [w.T, w[0], w * 1, w], mode, updates=[(w, w + 1)])
    first = f()
    saved = [o.copy() for o in first]
    f()
    for o, s in zip(first, saved):
        np.testing.assert_array_equal(o, s)
    np.testing.assert_array_equal(w.get_value(), np.arange(6.0).reshape(2, 3) + 2)
    for o in first:
        assert not np.shares_memory(o, w.get_value(borrow=True))


@pytest.mark.parametrize("mode", MODES)
def test_output_viewing_an_intermediate_is_not_destroyed(mode):
    x = vt.dmatrix("x")
    y = vt.exp(x)
    f = compile_([x], [y.T, vt.exp(y), y[0]], mode)
    xv = np.arange(6.0).reshape(2, 3) / 10
    a, b, c = f(xv)
    np.testing.assert_allclose(a, np.exp(xv).T)
    np.testing.assert_allclose(b, np.exp(np.exp(xv)))
    np.testing.assert_allclose(c, np.exp(xv)[0])


@pytest.mark.parametrize("mode", MODES)
def test_returned_arrays_are_never_written_by_later_calls(mode):
    v = vt.dvector("v")
    f = compile_([v], [(v + 1) * 2, vt.exp(v)], mode)
    r1 = f(np.ones(3))
    saved = [r.copy() for r in r1]
    f(np.zeros(3))
    f(np.full(3, 2.0))
    for r, s in zip(r1, saved):
        np.testing.assert_array_equal(r, s)


@pytest.mark.parametrize("mode", MODES)
def test_update_is_computed_in_the_parameter_buffer(mode):
    g = vt.dvector("g")
    w = vmc.shared(np.ones(4), name="w")
    f = compile_([g], w, mode, updates=[(w, w - 0.1 * g)])
    buf = w.get_value(borrow=True)
    out1 = f(np.ones(4))
    kept = out1.copy()
    f(np.ones(4))
    np.testing.assert_allclose(w.get_value(), 0.8)
    np.testing.assert_array_equal(out1, kept)           # the earlier output is intact
    assert w.get_value(borrow=True) is buf               # no allocation for the parameter


@pytest.mark.parametrize("mode", MODES)
def test_update_from_an_intermediate_keeps_the_parameter_buffer(mode):
    # w - 0.1 * g with g an intermediate the update may also overwrite: the result
    # goes into w's own buffer, not g's (w adopted g's buffer at every call, and
    # g's producer, an MPI receive buffer in vmc.distributed, had to allocate a
    # new one at every call)
    x = vt.dvector("x")
    w = vmc.shared(np.ones(5), name="w")
    g = vt.cumsum(x)                # not fused into the update
    f = compile_([x], [], mode, updates=[(w, w - 0.1 * g)])
    buf = w.get_value(borrow=True)
    a = np.linspace(0, 1, 5)
    f(a)
    f(a)
    np.testing.assert_allclose(w.get_value(), 1 - 0.2 * np.cumsum(a), rtol=1e-14)
    assert w.get_value(borrow=True) is buf


@pytest.mark.parametrize("mode", MODES)
def test_update_reading_another_updated_variable_gets_the_old_value(mode):
    a = vmc.shared(np.zeros(3), name="a")
    b = vmc.shared(np.ones(3), name="b")
    f = compile_([], [], mode, updates=[(a, a - 1), (b, a)])
    f()
    np.testing.assert_array_equal(b.get_value(), np.zeros(3))
    np.testing.assert_array_equal(a.get_value(), -np.ones(3))
    assert not np.shares_memory(a.get_value(borrow=True), b.get_value(borrow=True))


@pytest.mark.parametrize("mode", MODES)
def test_late_updates_reading_each_others_parameters_keep_their_order(mode):
    # Each update reads the other's parameter (directly, and through a view):
    # whatever the order of the late updates, both must see the old values.
    a = vmc.shared(np.arange(6.0).reshape(2, 3), name="a")
    b = vmc.shared(np.ones((3, 2)), name="b")
    x = vt.dmatrix("x")
    f = compile_([x], [], mode, updates=[(a, a - 0.5 * vt.dot(x, b.T)),
                                         (b, b * 2 + a.T)])
    av, bv, xv = a.get_value(), b.get_value(), np.full((2, 2), 0.25)
    for _ in range(3):
        f(xv)
        av, bv = av - 0.5 * xv @ bv.T, bv * 2 + av.T
    np.testing.assert_allclose(a.get_value(), av)
    np.testing.assert_allclose(b.get_value(), bv)


def test_late_update_with_the_coldest_input_runs_last():
    # Two layers' SGD updates: the first layer's gradient gemm reads the batch
    # and weights that were touched first, so it goes last (schedule.cache_order)
    # and the output layer's update finds its activations still in cache.
    x, y = vt.dmatrix("x"), vt.dmatrix("y")
    w1 = vmc.shared(np.full((4, 5), 0.1), name="w1")
    w2 = vmc.shared(np.full((5, 3), 0.1), name="w2")
    cost = vt.sum((vt.dot(vt.tanh(vt.dot(x, w1)), w2) - y) ** 2)
    g1, g2 = vmc.grad(cost, [w1, w2])
    f = vmc.function([x, y], cost, updates=[(w1, w1 - 0.01 * g1), (w2, w2 - 0.01 * g2)])
    p = f.program
    writers = [f.node_of_pc[pc] for pc in range(p.n_instr) if pc in f.node_of_pc]
    last_w1 = max(k for k, n in enumerate(writers) if w1 in n.inputs)
    last_w2 = max(k for k, n in enumerate(writers) if w2 in n.inputs)
    assert last_w2 < last_w1 == len(writers) - 1
    xv, yv = np.full((2, 4), 0.5), np.zeros((2, 3))
    h = np.tanh(xv @ w1.get_value())
    d = 2 * (h @ w2.get_value() - yv)
    g2v, g1v = h.T @ d, xv.T @ ((d @ w2.get_value().T) * (1 - h ** 2))
    w1v, w2v = w1.get_value() - 0.01 * g1v, w2.get_value() - 0.01 * g2v
    f(xv, yv)
    np.testing.assert_allclose(w1.get_value(), w1v)
    np.testing.assert_allclose(w2.get_value(), w2v)


@pytest.mark.parametrize("mode", MODES)
def test_failed_call_changes_no_shared_variable(mode):
    x = vt.dvector("x")
    w = vmc.shared(np.ones(3), name="w")
    b = vmc.shared(np.zeros(3), name="b")
    new_b = b + x
    # new_b (an update value) is computed, then the reshape fails
    f = compile_([x], new_b.reshape((7, 7)), mode, updates=[(w, w - x), (b, new_b)])
    w_buf = w.get_value(borrow=True)
    with pytest.raises(ValueError, match="reshape"):
        f(np.ones(3))
    np.testing.assert_array_equal(w.get_value(), np.ones(3))
    np.testing.assert_array_equal(b.get_value(), np.zeros(3))
    assert w.get_value(borrow=True) is w_buf


@pytest.mark.parametrize("mode", MODES)
def test_failing_in_place_update_changes_no_shared_variable(mode):
    x, y = vt.dvector("x"), vt.dvector("y")
    w = vmc.shared(np.ones(3), name="w")
    b = vmc.shared(np.zeros(3), name="b")
    f = compile_([x, y], [], mode, updates=[(w, w - x), (b, b + y)])
    with pytest.raises(ValueError):
        f(np.ones(3), np.ones(2))           # b's update fails on shapes
    with pytest.raises(ValueError):
        f(np.ones(1), np.ones(3))           # a length-1 x must not broadcast into w
    np.testing.assert_array_equal(w.get_value(), np.ones(3))
    np.testing.assert_array_equal(b.get_value(), np.zeros(3))
    f(np.ones(3), np.ones(3))               # and a good call still updates both
    np.testing.assert_array_equal(w.get_value(), np.zeros(3))
    np.testing.assert_array_equal(b.get_value(), np.ones(3))


@pytest.mark.parametrize("mode", MODES)
def test_failing_last_of_several_gemm_updates_changes_nothing(mode):
    x, y, z = vt.dmatrix("x"), vt.dmatrix("y"), vt.dmatrix("z")
    w1 = vmc.shared(np.ones((2, 3)), name="w1")
    w2 = vmc.shared(np.ones((2, 3)), name="w2")
    w3 = vmc.shared(np.ones((3, 3)), name="w3")
    f = compile_([x, y, z], [], mode, updates=[(w1, w1 - 0.5 * vt.dot(x, y)),
                                               (w2, w2 - 0.25 * vt.dot(x, y)),
                                               (w3, w3 - 0.5 * vt.dot(z.T, z))])
    xv, yv = np.ones((2, 4)), np.arange(12.0).reshape(4, 3)
    for bad in (np.ones((4, 2)), np.ones((2, 4))[:, ::2]):
        with pytest.raises(ValueError):
            f(xv, yv, bad)                  # only w3's update has wrong shapes
        for w, shape in ((w1, (2, 3)), (w2, (2, 3)), (w3, (3, 3))):
            np.testing.assert_array_equal(w.get_value(), np.ones(shape))
    f(xv, yv, yv)
    np.testing.assert_allclose(w1.get_value(), 1 - 0.5 * xv @ yv)
    np.testing.assert_allclose(w2.get_value(), 1 - 0.25 * xv @ yv)
    np.testing.assert_allclose(w3.get_value(), 1 - 0.5 * yv.T @ yv)


def chain_of_50(x):
    y = x
    for _ in range(50):
        y = y * 1.0001 + 0.5
        y = y - y.mean()
    return y


@pytest.mark.parametrize("mode", MODES)
def test_peak_memory_of_a_50_step_chain_stays_under_twice_the_input(mode, linker):
    n = 10_000_000                               # 80 MB of float64
    x = vt.dvector("x")
    f = compile_([x], chain_of_50(x), mode)
    xv = np.full(n, 0.25)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        r = f(xv)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 2 * xv.nbytes, f"peak {peak / 1e6:.0f} MB over the baseline"
    expected = np.full(8, 0.25)
    for _ in range(50):
        expected = expected * 1.0001 + 0.5
        expected = expected - expected.mean()
    np.testing.assert_allclose(r[:8], expected, atol=1e-12)


def test_without_frees_the_chain_keeps_every_intermediate():
    # the same chain, smaller, with allow_gc off: the Program frees nothing
    x = vt.dvector("x")
    with vmc.config.change(allow_gc=False, optimizer=None):
        f = vmc.function([x], chain_of_50(x))
    assert int(np.sum(f.program.n_free)) == 0
    with vmc.config.change(optimizer=None):
        g = vmc.function([x], chain_of_50(x))
    assert int(np.sum(g.program.n_free)) > 100
    np.testing.assert_allclose(f(np.ones(5)), g(np.ones(5)))
