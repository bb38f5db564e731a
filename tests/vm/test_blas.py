"""The BLAS thunks (vmc/thunks/_blas.pyx) against numpy, run through the VM."""
import weakref

import numpy as np
import pytest

from vmc._vm import VM
from vmc.program import THUNK, Program, int_array
from vmc.thunks._blas import REUSE_MAX_BYTES, dot_thunk, gemm_thunk, gemv_thunk, ger_thunk

from thunk_helpers import assert_no_leaks, thunk_vm

DTYPES = [np.float32, np.float64]
rng = np.random.default_rng(1234)


def run1(vm, *args):
    return vm.run(list(args))[0]


def tol(dtype):
    return dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


def layouts(shape, dtype):
    """The same values in every layout a thunk must handle."""
    base = rng.standard_normal(shape).astype(dtype)
    out = {"C": base, "F": np.asfortranarray(base)}
    big = np.zeros(tuple(2 * s + 1 for s in shape), dtype)
    idx = tuple(slice(1, 1 + 2 * s, 2) for s in shape)
    big[idx] = base
    out["strided"] = big[idx]
    out["transposed"] = np.ascontiguousarray(base.T).T
    flip = np.ascontiguousarray(base[(slice(None, None, -1),) * base.ndim])
    out["negative"] = flip[(slice(None, None, -1),) * base.ndim]
    if base.ndim == 2:
        out["neg-rows"] = np.ascontiguousarray(base[::-1])[::-1]
        r, c = shape
        out["sub"] = np.zeros((r + 3, c + 2), dtype)[1:1 + r, 2:2 + c]   # ld > cols
        out["sub"][...] = base
        out["sub-F"] = np.zeros((r + 3, c + 2), dtype, order="F")[2:2 + r, 1:1 + c]
        out["sub-F"][...] = base
    for arr in out.values():
        np.testing.assert_array_equal(arr, base)
    return out


MAT_LAYOUTS = ["C", "F", "sub", "sub-F", "strided", "negative", "neg-rows"]
VEC_LAYOUTS = ["C", "strided", "negative"]


# -------------------------------------------------------------------- dot

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lx", MAT_LAYOUTS)
@pytest.mark.parametrize("ly", MAT_LAYOUTS)
def test_dot_matrix_matrix(dtype, lx, ly):
    x, y = layouts((5, 4), dtype)[lx], layouts((4, 3), dtype)[ly]
    out = run1(thunk_vm(dot_thunk(), 2), x, y)
    assert out.dtype == dtype and out.flags.c_contiguous
    np.testing.assert_allclose(out, np.dot(x, y), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lm", MAT_LAYOUTS)
@pytest.mark.parametrize("lv", VEC_LAYOUTS)
def test_dot_matrix_vector_and_vector_matrix(dtype, lm, lv):
    vm = thunk_vm(dot_thunk(), 2)
    m, v, w = layouts((6, 4), dtype)[lm], layouts((4,), dtype)[lv], layouts((6,), dtype)[lv]
    for x, y in ((m, v), (w, m)):
        out = run1(vm, x, y)
        assert out.dtype == dtype and out.shape == np.dot(x, y).shape
        np.testing.assert_allclose(out, np.dot(x, y), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lx", VEC_LAYOUTS)
@pytest.mark.parametrize("ly", VEC_LAYOUTS)
def test_dot_vector_vector(dtype, lx, ly):
    x, y = layouts((7,), dtype)[lx], layouts((7,), dtype)[ly]
    out = run1(thunk_vm(dot_thunk(), 2), x, y)
    assert isinstance(out, np.ndarray) and out.shape == () and out.dtype == dtype
    np.testing.assert_allclose(out, np.dot(x, y), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sx, sy", [((1, 4), (4, 1)), ((4, 1), (1, 3)), ((1, 1), (1, 5)),
                                    ((1, 3), (3, 2)), ((3, 1), (1,)), ((1,), (1, 4))])
def test_dot_degenerate_shapes(dtype, sx, sy):
    vm = thunk_vm(dot_thunk(), 2)
    for lx, x in layouts(sx, dtype).items():
        for ly, y in layouts(sy, dtype).items():
            np.testing.assert_allclose(run1(vm, x, y), np.dot(x, y), **tol(dtype),
                                       err_msg=f"{lx} @ {ly}")


@pytest.mark.parametrize("x, y", [
    (np.ones((3, 4), np.float32), np.ones((4, 2), np.float64)),   # mixed dtypes
    (np.arange(12).reshape(3, 4), np.arange(4)),                   # integers
    (np.ones((2, 3, 4)), np.ones((4, 5))),                         # 3-d
    (np.array(2.0), np.ones(3)),                                   # 0-d
    (np.ones((0, 3)), np.ones((3, 4))),                            # empty
    (np.ones((3, 0)), np.ones((0, 4))),                            # empty inner dim
    (np.ones((2, 2), np.complex128), np.ones(2, np.complex128)),
    (np.ones(3, ">f8"), np.ones(3)),                               # byte-swapped
])
def test_dot_falls_back_to_numpy(x, y):
    out = run1(thunk_vm(dot_thunk(), 2), x, y)
    expected = np.dot(x, y)
    assert isinstance(out, np.ndarray) and out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)


def test_dot_large_releases_gil_and_is_right():
    x, y = rng.standard_normal((120, 90)), rng.standard_normal((90, 70))
    np.testing.assert_allclose(run1(thunk_vm(dot_thunk(), 2), x, y.T.copy().T), x @ y)


@pytest.mark.parametrize("x, y", [
    (np.ones((3, 4)), np.ones((5, 2))), (np.ones((3, 4)), np.ones(3)),
    (np.ones(3), np.ones((4, 2))), (np.ones(3), np.ones(4))])
def test_dot_shape_mismatch_names_both_shapes(x, y):
    vm = thunk_vm(dot_thunk(), 2)
    with pytest.raises(ValueError) as info:
        run1(vm, x, y)
    assert str(x.shape) in str(info.value) and str(y.shape) in str(info.value)
    assert vm.failed_pc == 0


# ------------------------------------------------------ gemm, gemv, ger

SCALARS = [lambda v, dt: np.array(v, dt), lambda v, dt: v, lambda v, dt: np.float64(v)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("lz", MAT_LAYOUTS)
@pytest.mark.parametrize("lxy", ["C", "F", "strided", "negative"])
def test_gemm(dtype, inplace, lz, lxy):
    vm = thunk_vm(gemm_thunk(inplace), 5)
    x, y = layouts((4, 6), dtype)[lxy], layouts((6, 3), dtype)["transposed"]
    for make, (alpha, beta) in zip(SCALARS, [(1.5, 0.5), (-2.0, 0.0), (0.0, 1.0)]):
        z = layouts((4, 3), dtype)[lz]
        expected = z * beta + alpha * (x.astype(np.float64) @ y)
        out = run1(vm, z, make(alpha, dtype), x, y, make(beta, dtype))
        assert out.dtype == dtype
        np.testing.assert_allclose(out, expected, **tol(dtype))
        if inplace:
            assert out is z
        else:
            assert out is not z and out.flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("lz", VEC_LAYOUTS)
@pytest.mark.parametrize("la", MAT_LAYOUTS)
def test_gemv(dtype, inplace, lz, la):
    vm = thunk_vm(gemv_thunk(inplace), 5)
    a, x = layouts((5, 3), dtype)[la], layouts((3,), dtype)[lz]
    for make, (alpha, beta) in zip(SCALARS, [(1.5, 0.5), (-2.0, 0.0), (0.5, 2.0)]):
        z = layouts((5,), dtype)[lz]
        expected = z * beta + alpha * (a.astype(np.float64) @ x)
        out = run1(vm, z, make(alpha, dtype), a, x, make(beta, dtype))
        np.testing.assert_allclose(out, expected, **tol(dtype))
        assert (out is z) == inplace and out.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("la", MAT_LAYOUTS)
@pytest.mark.parametrize("lv", VEC_LAYOUTS)
def test_ger(dtype, inplace, la, lv):
    vm = thunk_vm(ger_thunk(inplace), 4)
    x, y = layouts((4,), dtype)[lv], layouts((3,), dtype)[lv]
    for make, alpha in zip(SCALARS, [1.5, -2.0, 0.25]):
        a = layouts((4, 3), dtype)[la]
        expected = a + alpha * np.outer(x.astype(np.float64), y)
        out = run1(vm, a, make(alpha, dtype), x, y)
        np.testing.assert_allclose(out, expected, **tol(dtype))
        assert (out is a) == inplace and out.dtype == dtype


def test_gemm_inplace_with_aliased_operands():
    z0 = rng.standard_normal((4, 4))
    for alias in ("x", "y"):
        z = z0.copy()
        x, y = (z, z0.T.copy()) if alias == "x" else (z0.T.copy(), z.T)
        expected = z * 0.5 + 2.0 * (x.copy() @ y.copy())
        out = run1(thunk_vm(gemm_thunk(True), 5), z, 2.0, x, y, 0.5)
        assert out is z
        np.testing.assert_allclose(z, expected)


def test_ger_inplace_with_aliased_vector():
    a = rng.standard_normal((3, 3))
    row = a[0]
    expected = a + np.outer(row.copy(), a[:, 1].copy())
    out = run1(thunk_vm(ger_thunk(True), 4), a, 1.0, row, a[:, 1])
    assert out is a
    np.testing.assert_allclose(a, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.int64])     # BLAS, and numpy's fallback
def test_inplace_on_read_only_output_writes_a_new_array(dtype):
    """A read-only target (a shared value the user set with borrow=True) is
    not written: the result is a new array, so the update cannot fail after
    other updates wrote (issue 20, item 5)."""
    z = np.zeros((2, 2), dtype)
    z.flags.writeable = False
    ones = np.ones((2, 2), dtype)
    out = run1(thunk_vm(gemm_thunk(True), 5), z, 1, ones, ones, 1)
    np.testing.assert_array_equal(out, np.full((2, 2), 2))
    assert out is not z and not z.any()
    v = np.zeros(2, dtype)
    v.flags.writeable = False
    out = run1(thunk_vm(gemv_thunk(True), 5), v, 1, ones, np.ones(2, dtype), 1)
    np.testing.assert_array_equal(out, [2, 2])
    out = run1(thunk_vm(ger_thunk(True), 4), z, 1, np.ones(2, dtype), np.ones(2, dtype))
    np.testing.assert_array_equal(out, np.ones((2, 2)))
    assert not z.any() and not v.any()


def test_update_thunks_fall_back_to_numpy():
    z, x, y = np.ones((2, 3)), np.ones((2, 4), np.float32), np.ones((4, 3))
    np.testing.assert_allclose(run1(thunk_vm(gemm_thunk(), 5), z, 2.0, x, y, 1.0), z + 2 * x @ y)
    zi = np.arange(3)
    out = run1(thunk_vm(gemv_thunk(True), 5), zi, 1, np.ones((3, 2), int), np.ones(2, int), 1)
    assert out is zi and list(zi) == [2, 3, 4]
    a = np.zeros((2, 2), np.complex128)
    out = run1(thunk_vm(ger_thunk(), 4), a, 1j, np.ones(2), np.ones(2))
    np.testing.assert_array_equal(out, np.full((2, 2), 1j))


@pytest.mark.parametrize("thunk, args, shapes", [
    (gemm_thunk(), (np.ones((3, 3)), 1.0, np.ones((3, 4)), np.ones((5, 3)), 1.0),
     ["(3, 4)", "(5, 3)"]),
    (gemm_thunk(True), (np.ones((3, 3)), 1.0, np.ones((3, 4)), np.ones((4, 2)), 1.0),
     ["(3, 3)", "(3, 2)"]),
    (gemv_thunk(), (np.ones(3), 1.0, np.ones((3, 4)), np.ones(5), 1.0), ["(3, 4)", "(5,)"]),
    (gemv_thunk(), (np.ones(2), 1.0, np.ones((3, 4)), np.ones(4), 1.0), ["(2,)", "(3,)"]),
    (ger_thunk(), (np.ones((3, 3)), 1.0, np.ones(3), np.ones(4)), ["(3, 3)", "(3, 4)"]),
])
def test_update_shape_mismatch_names_both_shapes(thunk, args, shapes):
    with pytest.raises(ValueError) as info:
        run1(thunk_vm(thunk, len(args)), *args)
    for shape in shapes:
        assert shape in str(info.value)


# ------------------------------------------------------------ output reuse

def test_reuse_writes_only_into_unreferenced_outputs():
    vm = thunk_vm(dot_thunk(), 2)
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((5, 3))
    first = run1(vm, x, y)
    kept = first.copy()
    second = run1(vm, 2 * x, y)                  # `first` is held: a new array
    assert second is not first
    np.testing.assert_array_equal(first, kept)
    address = second.ctypes.data
    del second
    third = run1(vm, 3 * x, y)                   # nobody held it: written again
    assert third.ctypes.data == address
    np.testing.assert_allclose(third, 3 * x @ y)
    view = third[1:]
    del third
    fourth = run1(vm, x, y)                      # a view keeps the base alive
    np.testing.assert_allclose(view, (3 * x @ y)[1:])
    np.testing.assert_allclose(fourth, x @ y)


def test_reuse_needs_same_shape_and_dtype():
    vm = thunk_vm(dot_thunk(), 2)
    out = run1(vm, np.ones((2, 3)), np.ones((3, 4)))
    address = out.ctypes.data
    del out
    other = run1(vm, np.ones((2, 3)), np.ones((3, 5)))
    assert other.shape == (2, 5)
    np.testing.assert_array_equal(other, 3.0)
    f32 = run1(vm, np.ones((2, 3), np.float32), np.ones((3, 5), np.float32))
    assert f32.dtype == np.float32 and address is not None


def test_large_outputs_are_not_kept():
    vm = thunk_vm(dot_thunk(), 2)
    n = int(np.sqrt(REUSE_MAX_BYTES / 8)) + 8    # just over the limit
    big = run1(vm, np.ones((n, 2)), np.ones((2, n)))
    ref = weakref.ref(big)
    del big
    assert ref() is None                          # freed, not cached in the ctx
    small = run1(vm, np.ones((3, 2)), np.ones((2, 3)))
    ref = weakref.ref(small)
    del small
    assert ref() is not None                      # cached for the next call


def test_reuse_in_a_program_never_overwrites_returned_outputs():
    # out0 = x @ y is both returned and read by a second dot: it must survive
    # the next call untouched while the caller holds it.
    p = Program(
        n_regs=4, kind=int_array([THUNK, THUNK]), thunk=int_array([0, 1]),
        in_start=int_array([0, 2]), n_in=int_array([2, 2]), out_start=int_array([0, 1]),
        n_out=int_array([1, 1]), free_start=int_array([0, 0]), n_free=int_array([0, 0]),
        target=int_array([-1, -1]), ins=int_array([0, 1, 2, 1]), outs=int_array([2, 3]),
        frees=int_array([]), thunks=[dot_thunk(), dot_thunk()],
        input_regs=int_array([0, 1]), output_regs=int_array([2, 3]))
    vm = VM(p)
    x = rng.standard_normal((3, 3))
    results = [vm.run([x * k, x]) for k in range(1, 5)]
    for k, (a, b) in enumerate(results, start=1):
        np.testing.assert_allclose(a, (k * x) @ x)
        np.testing.assert_allclose(b, (k * x) @ x @ x)


@pytest.mark.parametrize("thunk, args", [
    (dot_thunk(), (np.ones((3, 4)), np.ones((4, 2)).T.copy().T)),
    (dot_thunk(), (np.ones((3, 4))[::-1], np.ones(4)[::2].repeat(2))),
    (dot_thunk(), (np.ones((3, 4)), np.ones(5))),                       # raises
    (gemm_thunk(True), (np.ones((3, 2))[::2], np.array(1.0), np.ones((2, 4)),
                        np.ones((4, 2)), 0.5)),
    (gemm_thunk(False), (np.ones((3, 2)), np.array(1.0), np.ones((3, 4)),
                         np.ones((4, 2)), np.array(0.5))),
    (gemv_thunk(False), (np.ones(3), 1.0, np.ones((3, 2)), np.ones(2)[::-1], 1.0)),
    (ger_thunk(True), (np.ones((3, 2)), 1.0, np.ones(3), np.ones(2))),
    (ger_thunk(False), (np.ones((3, 2)), 1.0, np.ones(3), np.ones(3))),  # raises
])
def test_thunks_do_not_leak_references(thunk, args):
    # A float literal is one object shared by the whole module, whose count moves as other
    # tests come and go: count a fresh float.
    args = tuple(a if isinstance(a, np.ndarray) else float(str(a)) for a in args)
    assert_no_leaks(thunk_vm(thunk, len(args)), args)
