"""Elementwise fusion: the groups it forms, the numpy thunk, and the C kernels it asks for."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.ifelse import ifelse
from vmc.tensor.fused import FusedElemwise
from vmc.thunks.elemwise_c import kernel_spec
from vmc.thunks import py_thunk

from opt_helpers import absent, compile_fn, nodes, op_names

# A rewrite loop must fail the test, not just slow it down.
pytestmark = pytest.mark.filterwarnings("error:vmc.opt:UserWarning")

RNG = np.random.default_rng(7)
M = RNG.standard_normal((4, 5))
V5 = RNG.standard_normal(5)


def fused(f):
    return [n for n in nodes(f) if isinstance(n.op, FusedElemwise)]


def test_chain_is_one_kernel():
    x = vt.vector("x")
    y = x
    for i in range(20):
        y = [y * x, y + 0.1, vt.tanh(y), y - x][i % 4]
    f = compile_fn([x], y)
    assert op_names(f) == ["FusedElemwise"]
    (node,) = fused(f)
    assert len(node.op.ops) == 20 and node.op.n_in == 1
    assert len(node.op.consts) == 1                # 0.1, merged, as a kernel constant
    v = np.linspace(-1, 1, 10)
    np.testing.assert_allclose(f(v), compile_fn([x], y, mode="None")(v), rtol=1e-14)


def test_broadcasting_inputs_and_scalar_constants():
    x, b = vt.matrix("x"), vt.vector("b")
    s = vt.scalar("s")
    e = vt.exp(-x * x) * b + vt.tanh(x) * 0.5 - s
    f = compile_fn([x, b, s], e)
    (node,) = fused(f)
    assert [v.type.broadcastable for v in node.inputs] == [
        (False, False), (True, False), (True, True)]
    np.testing.assert_allclose(f(M, V5, 0.3), np.exp(-M * M) * V5 + np.tanh(M) * 0.5 - 0.3)


def test_several_outputs():
    x = vt.matrix("x")
    a = vt.exp(x)
    f = compile_fn([x], [a + 1, a * 2, vt.sin(a)])
    (node,) = fused(f)
    assert len(node.outputs) == 3 and op_names(f) == ["FusedElemwise"]
    r = f(M)
    for got, want in zip(r, [np.exp(M) + 1, np.exp(M) * 2, np.sin(np.exp(M))]):
        np.testing.assert_allclose(got, want)


def test_no_fusion_through_a_path_outside_the_group():
    x, w = vt.matrices("x", "w")
    a = vt.exp(x)
    e = a * vt.dot(a, w)                   # exp -> dot -> mul: exp cannot join mul's kernel
    f = compile_fn([x, w], e)
    assert sorted(op_names(f)) == ["Dot", "FusedElemwise", "FusedElemwise"]
    wv = RNG.standard_normal((5, 5))
    np.testing.assert_allclose(f(M, wv), np.exp(M) * (np.exp(M) @ wv))


@pytest.mark.parametrize("make, ref", [
    (lambda x: vt.sum(x ** 2), lambda m: np.sum(m ** 2)),
    (lambda x: vt.sum(vt.exp(x) * x, axis=1), lambda m: np.sum(np.exp(m) * m, axis=1)),
    (lambda x: vt.max(vt.abs(x - 1), axis=0), lambda m: np.max(np.abs(m - 1), axis=0)),
    (lambda x: vt.min(x * x + 1), lambda m: np.min(m * m + 1)),
    (lambda x: vt.prod(x + 2, axis=1), lambda m: np.prod(m + 2, axis=1)),
])
def test_reduction_joins_the_kernel(make, ref):
    x = vt.matrix("x")
    f = compile_fn([x], make(x))
    assert op_names(f) == ["FusedElemwise"]
    (node,) = fused(f)
    assert node.op.reduce[0] is not None
    np.testing.assert_allclose(f(M), ref(M), rtol=1e-13)


def test_mean_of_squares_and_elementwise_after_reduction():
    x = vt.matrix("x")
    f = compile_fn([x], vt.mean(x ** 2, axis=1) + 1)
    absent(f, "Sum")
    np.testing.assert_allclose(f(M), np.mean(M ** 2, axis=1) + 1)
    f = compile_fn([x], x - vt.mean(x, axis=1, keepdims=True))     # the sum stays apart
    np.testing.assert_allclose(f(M), M - M.mean(axis=1, keepdims=True))


def test_shape_mismatch_still_raises():
    x, y = vt.vectors("x", "y")
    f = compile_fn([x, y], vt.exp(x) + y)
    with pytest.raises(ValueError, match=r"do not (match|fit)"):   # numpy / C kernel
        f(np.ones(3), np.ones(2))
    with pytest.raises(ValueError):
        f(np.ones(3), np.ones(1))          # a runtime 1 does not broadcast


def test_fusion_keeps_ifelse_branches_lazy():
    c = vt.scalar("c", dtype="int64")
    x, y = vt.vectors("x", "y")
    u = vt.exp(x)
    out = ifelse(c, u + y, u * 2)          # u + y fails when x and y differ in length
    f = compile_fn([c, x, y], out)
    v = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(f(0, v, np.ones(2)), np.exp(v) * 2)
    np.testing.assert_allclose(f(1, v, np.ones(3)), np.exp(v) + 1)


def test_numpy_thunk_in_place_and_reuse():
    x, y = vt.matrices("x", "y")
    f = compile_fn([x, y], vt.tanh(x * y + 1) * x - y)
    (node,) = fused(f)
    thunk = py_thunk(node, frozenset([0]))
    a, b = M.copy(), M.T.copy().T          # b: not C-contiguous
    expected = np.tanh(M * M + 1) * M - M
    out = thunk(a, b)
    np.testing.assert_allclose(out, expected)
    assert np.shares_memory(out, a)        # written into the dying input
    out2 = py_thunk(node, frozenset())(M, M)
    np.testing.assert_allclose(out2, expected)
    assert not np.shares_memory(out2, M)


@pytest.mark.parametrize("mode", ["fast_run", "py"])
def test_counts_and_small_int_sums_widen_inside_the_kernel(mode):
    # sum(eq(a, b)) (an accuracy's count) and sum of int8 accumulate in int64:
    # each element is cast in the kernel, so the sum never wraps at the narrow type.
    a, b = vt.lvector("a"), vt.lvector("b")
    i = vt.vector("i", dtype="int8")
    x = vt.vector("x")
    outs = [vt.sum(vt.eq(a, b)), vt.sum(i * 2), vt.mean(vt.eq(a, b)), vt.sum(x * x)]
    with vmc.config.change(linker="py" if mode == "py" else "cvm"):
        f = compile_fn([a, b, i, x], outs)
    absent(f, "Sum", "CAReduce")
    av, bv = np.arange(300) % 7, np.arange(300) % 5
    iv = np.full(300, 100, dtype="int8")   # i * 2 wraps per element as in numpy; the sum needs int64
    xv = np.linspace(-1, 1, 300)
    count, isum, acc, sq = f(av, bv, iv, xv)
    assert count.dtype == np.int64 and isum.dtype == np.int64
    assert count == np.sum(av == bv) and isum == np.sum((iv * 2).astype(np.int64))
    np.testing.assert_allclose(acc, np.mean(av == bv))
    np.testing.assert_allclose(sq, np.sum(xv * xv))


def test_int_and_bool_kernels():
    i = vt.vector("i", dtype="int32")
    x = vt.vector("x")
    e = vt.switch(vt.gt(i, 2), x * 2, -x) + vt.cast(i % 3, "float64")
    f = compile_fn([i, x], e)
    assert op_names(f) == ["FusedElemwise"]
    iv = np.arange(5, dtype="int32")
    xv = np.linspace(0, 1, 5)
    np.testing.assert_allclose(f(iv, xv), np.where(iv > 2, xv * 2, -xv) + iv % 3)


def test_kernel_spec_and_generated_c_match_numpy():
    cgen = pytest.importorskip("vmc.thunks.cgen")
    if not cgen.have_compiler():
        pytest.skip("no C compiler")
    from vmc.thunks.cgen.caller import call
    x, y = vt.matrices("x", "y")
    b = vt.vector("b")
    exprs = [vt.exp(-x * x) * y + vt.tanh(x) * 0.5,
             vt.sum(x ** 2),
             vt.max(vt.abs(x - b), axis=1),
             vt.log1p(vt.exp(x)) + b]
    graphs = [compile_fn([x, y, b], e) for e in exprs]
    fnodes = [fused(f)[0] for f in graphs]
    specs = [kernel_spec(n) for n in fnodes]
    assert specs[1].reduce == ("add", (0, 1), False)
    thunks = cgen.build_kernels(specs)
    yv = RNG.standard_normal((4, 5))
    values = {"x": M, "y": yv, "b": V5}

    def value(v):                          # a graph input, or a DimShuffle of one
        return values[v.name] if v.owner is None else py_thunk(v.owner)(value(v.owner.inputs[0]))
    for node, thunk in zip(fnodes, thunks):
        args = [value(v) for v in node.inputs]
        (got,) = call(thunk, *args, n_out=1)
        np.testing.assert_allclose(got, py_thunk(node)(*args), rtol=1e-13, atol=1e-14)


def test_function_uses_generated_kernels_when_the_vm_takes_c_thunks():
    import vmc.compile.function as F
    from vmc.program import CThunk
    x = vt.vector("x", dtype="float32")
    f = compile_fn([x], vt.exp(-x * x) * 2 + vt.tanh(x) * 0.5)
    v = np.linspace(-3, 3, 101).astype("float32")
    np.testing.assert_allclose(f(v), np.exp(-v * v) * 2 + np.tanh(v) * 0.5, rtol=1e-6,
                               atol=1e-6)
    from vmc.thunks.cgen import have_compiler
    c_vm = getattr(F, "CFunction", None) is not None and vmc.config.linker == "cvm"
    kinds = [isinstance(t, CThunk) for t in f.program.thunks]
    assert kinds == [c_vm and have_compiler()]


def test_generated_kernels_in_place():
    cgen = pytest.importorskip("vmc.thunks.cgen")
    if not cgen.have_compiler():
        pytest.skip("no C compiler")
    from vmc.thunks.cgen.caller import call
    x, d = vt.matrices("x", "d")
    t = vt.tanh(x)
    two = fused(compile_fn([x, d], [t, d * (1 - t * t)]))[0]
    one = fused(compile_fn([x, d], d * (1 - vt.tanh(x) ** 2)))[0]
    # several outputs: never in place (one output's stores could overtake the
    # other's loads of the same buffer)
    assert kernel_spec(two, frozenset([0, 1])).inplace == ()
    spec = kernel_spec(one, frozenset([1]))
    assert spec.inplace == ((0, 1),)
    t2, t1 = cgen.build_kernels([kernel_spec(two, frozenset([1])), spec])
    dv = RNG.standard_normal((4, 5))
    expected = dv * (1 - np.tanh(M) ** 2)
    a, b = M.copy(), dv.copy()
    r = call(t2, a, b, n_out=2)
    np.testing.assert_allclose(r[1], expected, rtol=1e-13)
    args = [M.copy(), dv.copy()] if one.inputs[0].name == "x" else [dv.copy(), M.copy()]
    (r,) = call(t1, *args, n_out=1)
    np.testing.assert_allclose(r, expected, rtol=1e-13)
    assert np.shares_memory(r, args[1])           # written over input 1
