"""Items 3, 4 and 13 of issue 20: what a call takes and hands back.

3. A mutable input that shares memory with another input (or a shared value,
   or its own stored default) is copied before the function overwrites it.
4. Returned arrays are the caller's own: never an argument, a default,
   another output, or a view of one of them (unless ``borrow=True``).
13. 0-d results are 0-d ndarrays, never numpy scalars, on both VMs and in
   every mode.
"""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt

LINKERS = ["cvm", "py"]
MODES = ["fast_run", "fast_compile", None]


def mode(optimizer, linker):
    return vmc.Mode(optimizer, linker=linker)


@pytest.mark.parametrize("linker", LINKERS)
@pytest.mark.parametrize("optimizer", MODES)
def test_mutable_input_aliasing_another_input_is_copied(optimizer, linker):
    x, y = vt.dvector("x"), vt.dvector("y")
    f = vmc.function([vmc.In(x, mutable=True), y], [vt.exp(x), vt.exp(y) + 1],
                     mode=mode(optimizer, linker))
    a = np.zeros(4)
    ex, ey = f(a, a)
    np.testing.assert_allclose(ex, np.ones(4))
    np.testing.assert_allclose(ey, np.full(4, 2.0))
    b = np.zeros(8)
    ex, ey = f(b[:4], b[2:6])          # overlapping views alias too
    np.testing.assert_allclose(ey, np.full(4, 2.0))


@pytest.mark.parametrize("linker", LINKERS)
def test_mutable_input_aliasing_a_shared_value_or_its_default(linker):
    x = vt.dvector("x")
    w = vmc.shared(np.zeros(3), name="w")
    f = vmc.function([vmc.In(x, mutable=True)], vt.exp(x) + w, mode=mode("fast_run", linker))
    np.testing.assert_allclose(f(w.get_value(borrow=True)), np.ones(3))
    np.testing.assert_array_equal(w.get_value(), np.zeros(3))
    d = np.zeros(3)
    g = vmc.function([vmc.In(x, value=d, mutable=True)], vt.exp(x) * 2,
                     mode=mode("fast_run", linker))
    np.testing.assert_allclose(g(), np.full(3, 2.0))
    np.testing.assert_allclose(g(), np.full(3, 2.0))     # the default was not overwritten


@pytest.mark.parametrize("linker", LINKERS)
@pytest.mark.parametrize("optimizer", MODES)
def test_outputs_are_the_callers_own(optimizer, linker):
    x = vt.dvector("x")
    m = mode(optimizer, linker)
    a = np.arange(3.0)
    r = vmc.function([x], x, mode=m)(a)
    assert r is not a and not np.shares_memory(r, a)
    r = vmc.function([x], x[::-1], mode=m)(a)               # a view of the argument
    assert not np.shares_memory(r, a)
    np.testing.assert_array_equal(r, a[::-1])
    r0, r1 = vmc.function([x], [x * 2, x * 2], mode=m)(a)
    assert not np.shares_memory(r0, r1)
    r0[0] = 42
    np.testing.assert_array_equal(r1, a * 2)
    r0, r1 = vmc.function([x], [x * 2, (x * 2)[1:]], mode=m)(a)
    assert not np.shares_memory(r0, r1)
    f = vmc.function([vmc.In(x, value=np.zeros(3))], x, mode=m)
    r = f()
    r[0] = 42
    np.testing.assert_array_equal(f(), np.zeros(3))


def test_borrowed_output_may_be_the_argument():
    x = vt.dvector("x")
    a = np.arange(3.0)
    assert vmc.function([x], vmc.Out(x, borrow=True))(a) is a


REDUCTIONS = [
    ("prod", vt.dvector, lambda v: vt.prod(v), np.arange(1.0, 4.0), np.float64(6.0)),
    ("int8 sum", vt.bvector, lambda v: vt.sum(v), np.arange(3, dtype=np.int8), 3),
    ("int8 max", vt.bvector, lambda v: vt.max(v), np.arange(3, dtype=np.int8), 2),
    ("all", vt.dvector, lambda v: vt.all(v), np.arange(3.0), False),
    ("scalar arithmetic", vt.dscalar, lambda v: v * 2 + 1, np.float64(1.5), 4.0),
    ("dot of vectors", vt.dvector, lambda v: vt.dot(v, v), np.arange(3.0), 5.0),
]


@pytest.mark.parametrize("linker", LINKERS)
@pytest.mark.parametrize("optimizer", MODES)
@pytest.mark.parametrize("case", REDUCTIONS, ids=[c[0] for c in REDUCTIONS])
def test_0d_results_are_arrays(case, optimizer, linker):
    _, make, expr, value, want = case
    v = make("v")
    f = vmc.function([v], [expr(v), expr(v) + 0], mode=mode(optimizer, linker))
    for r in f(value):
        assert type(r) is np.ndarray and r.ndim == 0, type(r)
        assert r == want
    # through an ifelse too: its output is one of the branch values
    from vmc.ifelse import ifelse
    c = vt.lscalar("c")
    g = vmc.function([v, c], ifelse(c, expr(v), vt.zeros_like(expr(v))), mode=mode(optimizer, linker))
    r = g(value, 1)
    assert type(r) is np.ndarray and r.ndim == 0 and r == want
