"""The stock kernels (vmc/thunks/cgen/stock.py): built by setup.py, current, each one
right against numpy, taken instead of compiling, and refused when built under another key."""
import zlib

import numpy as np
import pytest
from cache_helpers import builds, compiledir_at

import vmc
import vmc.tensor as vt
from vmc.program import CThunk
from vmc.thunks.cgen import cache, caller, elemwise, stock

_NUMPY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "true_div": np.divide}
_REDUCE = {"add": np.sum, "maximum": np.max, "minimum": np.min}
SHAPE = (5, 7)


@pytest.fixture
def tmpcache(tmp_path):
    with compiledir_at(tmp_path / "cache") as d:
        yield d


def test_library_is_built_and_current():
    # setup.py builds it; fails when the build is missing or older than the generator
    table, index = stock.table(elemwise.runtime().load)
    assert table is not None, f"{stock.LIBRARY} is missing or stale: python setup.py build_ext"
    assert list(index.values()) == list(range(len(stock.specs())))


def _operand(rng, dtype, bcast):
    shape = tuple(1 if b else n for b, n in zip(bcast, SHAPE[-len(bcast):]))
    # away from zero, so that true_div's oracle is well conditioned
    return (rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape)).astype(dtype)


@pytest.mark.parametrize("spec", stock.specs(), ids=elemwise._label)
def test_each_kernel_matches_numpy(spec):
    # a seed of the spec's own (hash() of a string differs from process to process)
    rng = np.random.default_rng(zlib.crc32(elemwise._label(spec).encode()))
    xs = [_operand(rng, dt, b) for dt, b in spec.inputs]
    copies = [x.copy() for x in xs]
    table, index = stock.table(elemwise.runtime().load)
    fn, ctx = elemwise.runtime().thunk(table, index[spec])
    (got,) = caller.call(CThunk(fn=fn, ctx=ctx, keepalive=table), *xs)
    if spec.reduce:
        op, axes, _ = spec.reduce
        want = _REDUCE[op](copies[0], axis=axes)
    else:
        want = _NUMPY[spec.body[0][1]](*copies)
    assert got.dtype == want.dtype
    eps = 2e-6 if got.dtype == np.float32 else 1e-14
    # a sum of mixed signs may nearly cancel: its error is relative to the sum of |x|
    atol = eps * float(np.abs(copies[0]).sum()) if spec.reduce else 0.0
    np.testing.assert_allclose(got, want, rtol=eps, atol=atol)
    may_overwrite = {i for _, i in spec.inplace}
    for i, (x, before) in enumerate(zip(xs, copies)):
        # an input is untouched, or it is the one the kernel may overwrite and it holds the result
        assert np.array_equal(x, before) or (i in may_overwrite and got is x)


def test_function_of_stock_kernels_compiles_no_c(tmpcache):
    x, b = vt.dmatrix("x"), vt.dvector("b")
    f = vmc.function([x, b], [x.sum(axis=0), x.max(axis=1), x * b])
    rng = np.random.default_rng(0)
    xv, bv = rng.standard_normal(SHAPE), rng.standard_normal(SHAPE[1])
    s, m, p = f(xv, bv)
    np.testing.assert_allclose(s, xv.sum(axis=0), rtol=1e-14)
    np.testing.assert_array_equal(m, xv.max(axis=1))
    np.testing.assert_array_equal(p, xv * bv)
    assert builds(tmpcache) == 0


def test_other_flags_refuse_the_library_and_compile(tmpcache, monkeypatch):
    assert stock.info()["stock status"] == "current"
    monkeypatch.setenv("VMC_CFLAGS", "-fno-tree-loop-distribute-patterns")
    assert stock.table(elemwise.runtime().load) == (None, {})
    assert stock.info()["stock status"].startswith("stale")
    x = vt.fmatrix("x")
    f = vmc.function([x], x.sum(axis=0))
    xv = np.random.default_rng(1).standard_normal(SHAPE).astype("float32")
    np.testing.assert_allclose(f(xv), xv.sum(axis=0), rtol=2e-6)
    assert builds(tmpcache) == 1


def test_build_is_a_no_op_when_current(tmp_path):
    out = tmp_path / stock.LIBRARY.name
    out.write_bytes(stock.LIBRARY.read_bytes())
    before = out.stat().st_mtime_ns
    stock.build(out)
    assert out.stat().st_mtime_ns == before
    assert stock.key() is not None and cache.compiler() is not None
