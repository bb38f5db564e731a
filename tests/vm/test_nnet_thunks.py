"""The softmax and cross-entropy C thunks (vmc/thunks/_nnet.pyx) against numpy,
run through the VM, in every layout and at the overflow edges."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.program import THUNK, CThunk
from vmc.tensor.nnet import crossentropy_softmax
from vmc.thunks._nnet import (crossentropy_softmax_dx_thunk, crossentropy_softmax_thunk,
                              log_softmax_thunk, softmax_thunk)

from thunk_helpers import assert_no_leaks, thunk_vm

DTYPES = [np.float32, np.float64]
rng = np.random.default_rng(7)


def tol(dtype):
    return dict(rtol=3e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)


def layouts(base):
    """The same values as C, Fortran, strided, reversed and sub-matrix arrays."""
    out = {"C": base, "F": np.asfortranarray(base),
           "negative": np.ascontiguousarray(base[(slice(None, None, -1),) * base.ndim])[
               (slice(None, None, -1),) * base.ndim]}
    big = np.zeros(tuple(2 * s + 1 for s in base.shape), base.dtype)
    idx = tuple(slice(1, 1 + 2 * s, 2) for s in base.shape)
    big[idx] = base
    out["strided"] = big[idx]
    for arr in out.values():
        np.testing.assert_array_equal(arr, base)
    return out


def np_softmax(x):
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_log_softmax(x):
    x64 = x.astype(np.float64)
    s = x64 - x64.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def np_xent(x, y):
    lsm = np_log_softmax(x)
    return -lsm[np.arange(len(y)), y], np_softmax(x), np.argmax(x, axis=1)


# --------------------------------------------------------------- softmax

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 13), (1, 5), (13,), (3, 1)])
@pytest.mark.parametrize("log_form", [False, True])
def test_softmax_every_layout(dtype, shape, log_form):
    make, oracle = ((log_softmax_thunk, np_log_softmax) if log_form
                    else (softmax_thunk, np_softmax))
    vm = thunk_vm(make(dtype), 1)
    base = (rng.standard_normal(shape) * 5).astype(dtype)
    for name, x in layouts(base).items():
        out = vm.run([x])[0]
        assert out.dtype == dtype and out.shape == shape and out.flags.c_contiguous, name
        np.testing.assert_allclose(out, oracle(base), **tol(dtype), err_msg=name)
        np.testing.assert_array_equal(x, base)          # the input is not touched


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_overflow_edges(dtype):
    x = np.array([[1000, 0, -1000], [-np.inf, 0, 0], [3, np.nan, 1], [88, 89, 90]], dtype)
    sm = thunk_vm(softmax_thunk(dtype), 1).run([x])[0]
    lsm = thunk_vm(log_softmax_thunk(dtype), 1).run([x])[0]
    np.testing.assert_allclose(sm[[0, 1, 3]], np_softmax(x[[0, 1, 3]]), **tol(dtype))
    np.testing.assert_allclose(lsm[[0, 1, 3]], np_log_softmax(x[[0, 1, 3]]), **tol(dtype))
    assert lsm[0, 2] == dtype(-2000) and lsm[1, 0] == -np.inf
    assert np.isnan(sm[2]).all() and np.isnan(lsm[2]).all()      # nan rows stay nan


@pytest.mark.parametrize("log_form", [False, True])
def test_softmax_in_place_writes_into_its_input(log_form):
    make, oracle = ((log_softmax_thunk, np_log_softmax) if log_form
                    else (softmax_thunk, np_softmax))
    x = rng.standard_normal((4, 6))
    expected = oracle(x)
    out = thunk_vm(make(np.float64, True), 1).run([x])[0]
    assert out is x
    np.testing.assert_allclose(out, expected, rtol=1e-13)
    y = np.asfortranarray(rng.standard_normal((4, 6)))     # not C-contiguous: a new array
    kept = y.copy()
    assert thunk_vm(make(np.float64, True), 1).run([y])[0] is not y
    np.testing.assert_array_equal(y, kept)


def test_softmax_thunk_refuses_other_dtypes():
    with pytest.raises(TypeError, match="float32 and float64"):
        softmax_thunk(np.int64)


# --------------------------------------------------------- cross-entropy

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ydtype", [np.int64, np.int32, np.uint8])
def test_crossentropy_every_layout(dtype, ydtype):
    vm = thunk_vm(crossentropy_softmax_thunk(dtype), 2, 3)
    base = (rng.standard_normal((9, 6)) * 4).astype(dtype)
    y = rng.integers(0, 6, 9).astype(ydtype)
    nll_ref, sm_ref, am_ref = np_xent(base, y)
    for name, x in layouts(base).items():
        nll, sm, am = vm.run([x, y])
        assert (nll.dtype, sm.dtype, am.dtype) == (dtype, dtype, np.int64), name
        np.testing.assert_allclose(nll, nll_ref, **tol(dtype), err_msg=name)
        np.testing.assert_allclose(sm, sm_ref, **tol(dtype), err_msg=name)
        np.testing.assert_array_equal(am, am_ref, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_crossentropy_overflow_ties_and_nan(dtype):
    x = np.array([[2000, 0, -2000], [5, 5, 1], [1, np.nan, np.nan], [-np.inf, 0, 1]], dtype)
    y = np.array([1, 1, 0, 2])
    nll, sm, am = thunk_vm(crossentropy_softmax_thunk(dtype), 2, 3).run([x, y])
    assert nll[0] == 2000 and np.isfinite(nll[[0, 1, 3]]).all()
    np.testing.assert_allclose(nll[[1, 3]], np_xent(x[[1, 3]], y[[1, 3]])[0], **tol(dtype))
    assert list(am) == [0, 0, 1, 2]              # first maximum; first nan, as np.argmax
    assert np.isnan(nll[2]) and np.isnan(sm[2]).all()


def test_crossentropy_errors_name_the_problem():
    vm = thunk_vm(crossentropy_softmax_thunk(np.float64), 2, 3)
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"target 4 of row 1 is outside \[0, 4\)"):
        vm.run([x, np.array([0, 4, 1])])
    with pytest.raises(ValueError, match=r"target -1 of row 2"):
        vm.run([x, np.array([0, 1, -1])])
    with pytest.raises(ValueError, match="3 rows of logits but 2 targets"):
        vm.run([x, np.array([0, 1])])
    with pytest.raises(ValueError, match="no classes"):
        vm.run([np.zeros((3, 0)), np.array([0, 0, 0])])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gshape", [(5,), (1,)])
def test_crossentropy_dx_against_numpy(dtype, gshape):
    sm = np_softmax(rng.standard_normal((5, 7))).astype(dtype)
    g = rng.standard_normal(gshape).astype(dtype)
    y = rng.integers(0, 7, 5)
    expected = sm.astype(np.float64) * g[:, None]
    expected[np.arange(5), y] -= g
    vm = thunk_vm(crossentropy_softmax_dx_thunk(dtype), 3)
    for name, s in layouts(sm).items():
        kept = s.copy()
        out = vm.run([g, s, y])[0]
        np.testing.assert_allclose(out, expected, **tol(dtype), err_msg=name)
        np.testing.assert_array_equal(s, kept)     # not in place: sm is not touched
    out = thunk_vm(crossentropy_softmax_dx_thunk(dtype, True), 3).run([g, sm, y])[0]
    assert out is sm
    np.testing.assert_allclose(out, expected, **tol(dtype))
    with pytest.raises(ValueError, match="outside"):
        vm.run([g, sm, np.full(5, 7)])


def test_reused_output_is_never_one_a_caller_holds():
    vm = thunk_vm(softmax_thunk(np.float64), 1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    first = vm.run([a])[0]
    held = first.copy()
    second = vm.run([b])[0]
    assert second is not first
    np.testing.assert_array_equal(first, held)
    del first, second
    np.testing.assert_allclose(vm.run([a])[0], np_softmax(a), rtol=1e-13)


@pytest.mark.parametrize("make, n_in, n_out, args", [
    (lambda: softmax_thunk(np.float64), 1, 1, (np.ones((2, 3)),)),
    (lambda: crossentropy_softmax_thunk(np.float64), 2, 3, (np.ones((2, 3)), np.array([0, 2]))),
    (lambda: crossentropy_softmax_thunk(np.float64), 2, 3, (np.ones((2, 3)), np.array([0, 3]))),
    (lambda: crossentropy_softmax_dx_thunk(np.float64), 3, 1,
     (np.ones(2), np.ones((2, 3)), np.array([0, 1]))),
])
def test_nnet_thunks_do_not_leak_references(make, n_in, n_out, args):
    assert_no_leaks(thunk_vm(make(), n_in, n_out), args)


# ------------------------------------------------------- through vmc.function

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_cross_entropy_runs_the_c_thunks(dtype):
    x, y = vt.matrix("x", dtype=dtype), vt.lvector("y")
    cost = crossentropy_softmax(x, y).mean()
    f = vmc.function([x, y], [cost, vmc.grad(cost, x), vt.nnet.log_softmax(x)])
    p = f.program
    in_c = {type(node.op).__name__: isinstance(p.thunks[int(p.thunk[pc])], CThunk)
            for pc, node in f.node_of_pc.items() if int(p.kind[pc]) == THUNK}
    assert in_c["CrossentropySoftmaxArgmax"] and in_c["CrossentropySoftmaxDx"]
    assert in_c["LogSoftmax"]
    X = (rng.standard_normal((16, 5)) * 3).astype(dtype)
    Y = rng.integers(0, 5, 16)
    cost_v, g_v, lsm_v = f(X, Y)
    nll, sm, _ = np_xent(X, Y)
    g_ref = sm.copy()
    g_ref[np.arange(16), Y] -= 1
    np.testing.assert_allclose(cost_v, nll.mean(), **tol(np.dtype(dtype).type))
    np.testing.assert_allclose(g_v, g_ref / 16, **tol(np.dtype(dtype).type))
    np.testing.assert_allclose(lsm_v, np_log_softmax(X), **tol(np.dtype(dtype).type))
