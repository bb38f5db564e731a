"""The cache of large freed kernel outputs (vmc/thunks/cgen/vmc_blocks.h).

Oracles: numpy's results, and the cache's own counters (hits, misses, blocks held):
a freed block is reused by the next request of its size, a request it cannot serve
returns every cached block first, an output a user still holds is never reused.
"""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.config import config
from vmc.thunks import cgen

pytestmark = pytest.mark.skipif(not cgen.have_compiler(), reason="no C compiler")

N = 300_000          # float64: 2.4 MB, above the cache's 1 MB threshold


@pytest.fixture
def fresh():
    cgen.block_cache_release()
    yield
    cgen.block_cache_release()


def _f():
    x, y = vt.vector("x"), vt.vector("y")
    return vmc.function([x, y], x * y + 0.5)


def test_freed_output_is_reused_and_right(fresh):
    f = _f()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(N) for _ in range(4)]
    before = cgen.block_cache_info()
    for x in xs:
        np.testing.assert_array_equal(f(x, x), x * x + 0.5)   # result dropped: block freed
    info = cgen.block_cache_info()
    assert info["hits"] - before["hits"] >= len(xs) - 1
    assert info["blocks"] == 1 and info["bytes"] >= N * 8


def test_held_output_is_never_overwritten(fresh):
    f = _f()
    a, b = np.full(N, 2.0), np.full(N, 3.0)
    r1 = f(a, a)
    r2 = f(b, b)                     # r1 is alive: its block is not in the cache
    assert r1.flags.owndata and r1.ctypes.data != r2.ctypes.data
    np.testing.assert_array_equal(r1, 4.5)
    np.testing.assert_array_equal(r2, 9.5)
    del r1
    r3 = f(a, b)                     # may reuse r1's block
    np.testing.assert_array_equal(r2, 9.5)
    np.testing.assert_array_equal(r3, 6.5)


def test_a_miss_returns_cached_blocks_first(fresh):
    f = _f()
    f(np.ones(N), np.ones(N))
    assert cgen.block_cache_info()["blocks"] == 1
    misses = cgen.block_cache_info()["misses"]
    r = f(np.ones(2 * N), np.ones(2 * N))          # another size: nothing held meanwhile
    info = cgen.block_cache_info()
    assert info["misses"] == misses + 1 and info["blocks"] == 0
    np.testing.assert_array_equal(r, 1.5)


def test_cap_zero_keeps_nothing(fresh):
    with config.change(block_cache_mb=0):
        f = _f()
        f(np.ones(N), np.ones(N))
        assert cgen.block_cache_info()["blocks"] == 0
    _f()                                            # the cap follows config again
    assert cgen.block_cache_info()["cap"] == int(config.block_cache_mb * 2 ** 20)


def test_cached_arrays_resize_and_pickle_like_any_array(fresh):
    import pickle
    f = _f()
    r = f(np.arange(N, dtype=float), np.ones(N))
    r.resize(N + 1000, refcheck=False)              # realloc through the handler
    np.testing.assert_array_equal(r[:N], np.arange(N) + 0.5)
    assert (r[N:] == 0).all()
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(r))[:N], np.arange(N) + 0.5)


def test_stale_runtime_falls_back_to_numpy_with_a_warning(monkeypatch):
    from vmc.thunks import elemwise_c as thunks
    from vmc.thunks.cgen import elemwise
    monkeypatch.setattr(elemwise, "headers_digest", lambda: "something else")
    monkeypatch.setattr(thunks, "_warned", [])
    with pytest.raises(RuntimeError, match="build_ext"):
        elemwise.runtime()
    x = vt.vector("x")
    v = np.linspace(-3, 3, 11)
    with pytest.warns(UserWarning, match="other C headers"):
        f = vmc.function([x], vt.tanh(x) * 2 + x)
    np.testing.assert_allclose(f(v), np.tanh(v) * 2 + v)


# ----------------------------------------------------- streaming stores (vmc_ew_runtime.h)
# Outputs of at least 16 MB are written through an L1 buffer with non-temporal
# stores: checked here against numpy, aliased in place, misaligned, two outputs.

BIG = 4_500_001      # float32: 18 MB; odd, so the last chunk is partial


def test_streamed_outputs_match_numpy():
    x, y = vt.vector("x", dtype="float32"), vt.vector("y", dtype="float32")
    f = vmc.function([x, y], [x * y + 0.5, vt.tanh(x) - y])
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, BIG), dtype=np.float32)
    r1, r2 = f(a, b)
    np.testing.assert_array_equal(r1, a * b + np.float32(0.5))
    np.testing.assert_allclose(r2, np.tanh(a) - b, rtol=1e-6, atol=1e-6)


def test_streamed_in_place_update_into_a_misaligned_buffer():
    raw = np.zeros(BIG + 1, dtype=np.float32)
    w0 = raw[1:]                                   # 4 bytes past a 16-byte boundary
    w0[:] = np.linspace(-1, 1, BIG, dtype=np.float32)
    expect = w0 * np.float32(0.5) + np.float32(2.0)
    w = vmc.shared(w0, borrow=True)
    f = vmc.function([], [], updates=[(w, w * 0.5 + 2.0)])
    f()
    got = w.get_value(borrow=True)
    assert got.ctypes.data == raw.ctypes.data + 4          # written in place
    np.testing.assert_array_equal(got, expect)


# ------------------------------------------ the other users: BLAS outputs, scan traces

def test_blas_outputs_come_from_the_cache(fresh):
    a, b = vt.matrix("a"), vt.matrix("b")
    f = vmc.function([a, b], vt.dot(a, b))
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((600, 50)), rng.standard_normal((50, 600))   # 2.9 MB out
    hits = cgen.block_cache_info()["hits"]
    for _ in range(3):
        np.testing.assert_allclose(f(x, y), x @ y, rtol=1e-12)
    assert cgen.block_cache_info()["hits"] >= hits + 2
    held = f(x, y)
    again = f(2 * x, y)                      # `held` is alive: not reused
    np.testing.assert_allclose(held, x @ y, rtol=1e-12)
    np.testing.assert_allclose(again, 2 * x @ y, rtol=1e-12)


def test_scan_traces_come_from_the_cache(fresh):
    from vmc.thunks import blocks
    x = vt.matrix("x")
    out, _ = vmc.scan(lambda r, acc: acc + r, sequences=x, outputs_info=vt.zeros_like(x[0]))
    f = vmc.function([x], out)
    v = np.random.default_rng(3).standard_normal((400, 1000))            # 3.2 MB trace
    hits = cgen.block_cache_info()["hits"]
    for k in range(3):
        np.testing.assert_allclose(f(v * k), np.cumsum(v * k, axis=0), rtol=1e-10, atol=1e-12)
    assert cgen.block_cache_info()["hits"] >= hits + 2
    e = blocks.empty((3, 400_000), "float32")
    assert e.shape == (3, 400_000) and e.dtype == np.float32 and e.flags.c_contiguous
    with pytest.raises(ValueError):
        blocks.empty((-1, 5), "float64")
