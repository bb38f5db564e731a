"""The C thunks of vmc/thunks/_shapes.pyx (DimShuffle views, Shape_i, the
checks before late updates) against their Python counterparts."""
import gc
import sys

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.program import THUNK, CThunk
from vmc.tensor.elemwise import DimShuffle
from vmc.thunks._shapes import dimshuffle_thunk, equal_dims_thunk, shape_i_thunk

from thunk_helpers import thunk_vm

rng = np.random.default_rng(3)

PATTERNS = [  # (input ndim, new order)
    (1, ("x", 0)), (1, (0, "x")), (2, (1, 0)), (2, ("x", 1, "x", 0)), (0, ("x",)),
    (0, ("x", "x")), (3, (2, 0, 1)), (3, (0, 2)), (2, (1,)), (2, ()), (1, (0,)),
]


def sample(ndim, pattern):
    """An array whose dims dropped by the pattern have length 1."""
    kept = [d for d in pattern if d != "x"]
    shape = tuple(1 if d not in kept else 3 + d for d in range(ndim))
    return np.asarray(rng.standard_normal(shape))


def variants(a):
    out = {"C": a, "readonly": a.copy()}
    out["readonly"].flags.writeable = False
    if a.ndim:
        out["F"] = np.asfortranarray(a)
        big = np.zeros(tuple(2 * s for s in a.shape))
        out["strided"] = big[tuple(slice(None, None, 2) for _ in a.shape)]
        out["strided"][...] = a
        out["reversed"] = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])[
            (slice(None, None, -1),) * a.ndim]
    return out


@pytest.mark.parametrize("ndim, pattern", PATTERNS)
def test_dimshuffle_view_is_numpys(ndim, pattern):
    op = DimShuffle(ndim, pattern)
    vm = thunk_vm(dimshuffle_thunk(ndim, pattern), 1)
    for name, a in variants(sample(ndim, pattern)).items():
        got, want = vm.run([a])[0], op.view_of(a)
        assert got.shape == want.shape and got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert got.flags.writeable == a.flags.writeable, name
        assert got.flags.c_contiguous == want.flags.c_contiguous, name
        assert got.flags.f_contiguous == want.flags.f_contiguous, name
        if a.size:
            assert np.shares_memory(got, a), name


def test_dimshuffle_view_keeps_its_base_alive_and_leaks_nothing():
    vm = thunk_vm(dimshuffle_thunk(2, (1, "x", 0)), 1)
    a = np.arange(6.0).reshape(2, 3).copy()        # owns its data: views point to it
    gc.collect()
    before = sys.getrefcount(a)
    views = [vm.run([a])[0] for _ in range(20)]
    assert sys.getrefcount(a) > before
    del views
    vm.run([np.zeros((2, 3))])          # the VM lets go of its last register too
    gc.collect()
    assert sys.getrefcount(a) == before
    view = vm.run([np.arange(6.0).reshape(2, 3).copy()])[0]
    gc.collect()
    np.testing.assert_array_equal(view[:, 0, :], np.arange(6.0).reshape(2, 3).T)
    view[0, 0, 1] = 7.0                  # writes through to the base it keeps alive
    assert view.base is not None and view.base[1, 0] == 7.0


def test_dimshuffle_errors_name_the_shape():
    vm = thunk_vm(dimshuffle_thunk(2, (1,)), 1)
    with pytest.raises(ValueError, match=r"dim 0 .* shape \(2, 3\) is dropped"):
        vm.run([np.zeros((2, 3))])
    with pytest.raises(ValueError, match="expected a 2-d array"):
        vm.run([np.zeros(3)])


def test_shape_i_and_its_reused_output():
    vm = thunk_vm(shape_i_thunk(1), 1)
    first = vm.run([np.zeros((2, 5))])[0]
    assert first.dtype == np.int64 and first.shape == () and first == 5
    second = vm.run([np.zeros((2, 9))])[0]
    assert second == 9 and first == 5              # a held output is never rewritten
    del first, second
    assert vm.run([[[1, 2, 3]]])[0] == 3          # not an ndarray: converted
    with pytest.raises(ValueError, match=r"Shape_i\{1\}"):
        vm.run([np.zeros(4)])


def test_equal_dims_checks_and_explains():
    calls = []

    def explain(*args):
        calls.append([np.shape(a) for a in args])
        raise ValueError("explained: " + " vs ".join(str(np.shape(a)) for a in args))

    # args[0].shape[1] == args[1].shape[0] and args[2].shape[0] == args[0].shape[0]
    vm = thunk_vm(equal_dims_thunk([(0, 1, 1, 0), (2, 0, 0, 0)], explain, 3), 3, 0)
    vm.run([np.zeros((2, 3)), np.zeros((3, 4)), np.zeros(2)])
    assert calls == []
    with pytest.raises(ValueError, match=r"explained: \(2, 3\) vs \(4, 4\) vs \(2,\)"):
        vm.run([np.zeros((2, 3)), np.zeros((4, 4)), np.zeros(2)])
    with pytest.raises(ValueError, match="explained"):
        vm.run([np.zeros((2, 3)), np.zeros((3, 4)), np.zeros(5)])
    assert len(calls) == 2
    quiet = thunk_vm(equal_dims_thunk([(0, 0, 1, 0)], lambda *a: None, 2), 2, 0)
    quiet.run([np.zeros(2), 3.0])         # not arrays: the Python check decides
    assert equal_dims_thunk([(0, 0, 0, 0)] * 65, explain, 1) is None


def test_compiled_step_runs_views_shapes_and_checks_in_c():
    x, y = vt.dmatrix("x"), vt.lvector("y")
    w = vmc.shared(np.full((4, 3), 0.1), name="w")
    b = vmc.shared(np.zeros(3), name="b")
    logits = vt.dot(x, w) + b
    cost = -vt.mean(vt.nnet.log_softmax(logits)[vt.arange(y.shape[0]), y])
    gw, gb = vmc.grad(cost, [w, b])
    f = vmc.function([x, y], cost, updates=[(w, w - 0.1 * gw), (b, b - 0.1 * gb)])
    p = f.program
    in_c = {}
    for pc, node in f.node_of_pc.items():
        if int(p.kind[pc]) == THUNK:
            in_c.setdefault(type(node.op).__name__, set()).add(
                isinstance(p.thunks[int(p.thunk[pc])], CThunk))
    assert in_c["DimShuffle"] == {True} and in_c["CheckUpdates"] == {True}
    xv, yv = rng.standard_normal((5, 4)), np.array([0, 2, 1, 1, 0])
    z = xv @ w.get_value() + b.get_value()
    lsm = z - z.max(1, keepdims=True)
    lsm -= np.log(np.exp(lsm).sum(1, keepdims=True))
    np.testing.assert_allclose(f(xv, yv), -lsm[np.arange(5), yv].mean())
    with pytest.raises(ValueError):
        f(rng.standard_normal((5, 3)), yv)     # wrong width: nothing is updated
    np.testing.assert_allclose(b.get_value(), np.zeros(3) - 0.1 * (
        (np.exp(lsm) - np.eye(3)[yv]).mean(0)))
