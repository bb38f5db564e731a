"""Indexing on the device against the CPU: basic views, integer-array gathers,
set/inc_subtensor with repeated indices, alloc, arange, join."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt

from .helpers import assert_close, compile_both, ops_on

RNG = np.random.default_rng(3)
NO_REWRITES = vmc.Mode("fast_run").excluding("stabilize")


def test_basic_indexing_is_a_view(device):
    x, i = vt.dtensor3("x"), vt.lscalar("i")
    outs = [x[1:, ::2, i], x[::-1, i], x[None, :, -1, 1:3], x[..., 0]]
    f, g = compile_both([x, i], outs, device)
    xv = RNG.standard_normal((4, 5, 6))
    assert_close(f(xv, 2), g(xv, 2))
    assert_close(f(xv, -1), g(xv, -1))


def test_integer_array_indexing(device):
    x, a, b = vt.dtensor3("x"), vt.lvector("a"), vt.lmatrix("b")
    outs = [x[a], x[:, a], x[a, :, a], x[a, 1], x[b, a], x[:, b, a], x[a, :, 2:4]]
    f, g = compile_both([x, a, b], outs, device)
    on, _ = ops_on(f, device)
    assert "Subtensor" in on
    xv = RNG.standard_normal((5, 5, 6))
    av = np.array([0, -1, 3, 3])
    bv = RNG.integers(-5, 5, (2, 4))
    assert_close(f(xv, av, bv), g(xv, av, bv))


def test_index_out_of_bounds_is_an_error(device):
    x, a = vt.dvector("x"), vt.lvector("a")
    with vmc.config.change(device=device):
        f = vmc.function([x, a], x[a] * 2)
    with pytest.raises(IndexError, match="out of bounds"):
        f(np.arange(3.0), np.array([0, 3]))
    np.testing.assert_array_equal(f(np.arange(3.0), np.array([2, -3])), [4.0, 0.0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inc_and_set_subtensor_with_repeated_indices(device, dtype):
    x, y = vt.matrix("x", dtype=dtype), vt.matrix("y", dtype=dtype)
    a, r = vt.lvector("a"), vt.lvector("r")
    outs = [vt.inc_subtensor(x[a], y), vt.set_subtensor(x[a, 1:3], y[:, :2]),
            vt.inc_subtensor(x[r, a], y[:, 0]), vt.inc_subtensor(x[1:, ::2], 1.5)]
    f, g = compile_both([x, y, a, r], outs, device)
    xv = RNG.standard_normal((5, 7)).astype(dtype)
    yv = RNG.standard_normal((4, 7)).astype(dtype)
    av = np.array([1, 3, 1, 1])              # repeated rows add up
    rv = np.array([0, 2, 2, 4])
    got, want = f(xv, yv, av, rv), g(xv, yv, av, rv)
    assert_close([got[0], got[2], got[3]], [want[0], want[2], want[3]])
    assert got[1].shape == want[1].shape


def test_gradient_of_a_gather_is_a_scatter_add(device):
    x, a = vt.dmatrix("x"), vt.lvector("a")
    cost = (x[a] ** 2).sum()
    f, g = compile_both([x, a], vmc.grad(cost, x), device)
    xv, av = RNG.standard_normal((4, 3)), np.array([0, 2, 0, 0, 3])
    assert_close(f(xv, av), g(xv, av))


def test_alloc_arange_join(device):
    x, v, n = vt.dmatrix("x"), vt.dvector("v"), vt.lscalar("n")
    outs = [vt.alloc(v, n, v.shape[0]), vt.arange(n) * 2.5, vt.arange(1, n, 3),
            vt.concatenate([x, x * 2], axis=1), vt.concatenate([x, x[:1]], axis=0),
            vt.zeros_like(x) + v]
    f, g = compile_both([x, v, n], outs, device, mode=NO_REWRITES)
    xv, vv = RNG.standard_normal((3, 4)), RNG.standard_normal(4)
    assert_close(f(xv, vv, 5), g(xv, vv, 5))
