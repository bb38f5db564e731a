"""The CUDA-only logic that a machine without a GPU can still check: how an
operand of any strides is handed to cuBLAS (checked against an emulation of
cuBLAS's column-major gemm on the same flat memory), and the kernels' CUDA
source (NVRTC compiles every module the other tests build: conftest.py)."""
import itertools

import numpy as np
import pytest

from vmc.gpu._gblas import cublas_call, cublas_layout


def _colmajor(buf, off, rows, cols, ld):
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return buf[off + i + j * ld]


def _cublas_gemm(transa, transb, m, n, k, a_buf, a_off, lda, b_buf, b_off, ldb):
    """What cublasSgemm computes (alpha 1, beta 0), column-major: op(A) (m x k) @ op(B) (k x n)."""
    A = _colmajor(a_buf, a_off, m, k, lda) if transa == 0 else _colmajor(a_buf, a_off, k, m, lda).T
    B = _colmajor(b_buf, b_off, k, n, ldb) if transb == 0 else _colmajor(b_buf, b_off, n, k, ldb).T
    return A @ B


def _operand(rng, r, c, layout):
    """(flat buffer, offset, s0, s1) of an r x c matrix stored C-order, F-order, or
    as a slice of a bigger one."""
    big = rng.standard_normal(4 * (r + 3) * (c + 3))
    if layout == "C":
        return big, 5, c, 1
    if layout == "F":
        return big, 5, 1, r
    return big, 7, 2 * c + 3, 1          # every row is a row of a wider matrix


@pytest.mark.parametrize("m,n,k", [(3, 4, 5), (1, 4, 5), (3, 1, 5), (3, 4, 1), (1, 1, 1)])
def test_operands_of_any_layout_reach_cublas_as_the_right_matrices(m, n, k):
    rng = np.random.default_rng(0)
    for la, lb in itertools.product("CFS", repeat=2):
        abuf, aoff, as0, as1 = _operand(rng, m, k, la)
        bbuf, boff, bs0, bs1 = _operand(rng, k, n, lb)
        A = abuf[aoff + np.arange(m)[:, None] * as0 + np.arange(k)[None, :] * as1]
        B = bbuf[boff + np.arange(k)[:, None] * bs0 + np.arange(n)[None, :] * bs1]
        a_layout, b_layout = cublas_layout(m, k, as0, as1), cublas_layout(k, n, bs0, bs1)
        assert a_layout is not None and b_layout is not None
        ta, tb, m2, n2, k2, lda, ldb, ldc = cublas_call(m, n, k, a_layout, b_layout)
        assert lda >= 1 and ldb >= 1 and ldc == n
        # cuBLAS's A is our B, its B our A; it writes C^T (n x m) column-major = C row-major
        ct = _cublas_gemm(ta, tb, m2, n2, k2, bbuf, boff, lda, abuf, aoff, ldb)
        np.testing.assert_allclose(ct.T, A @ B, rtol=1e-12, atol=1e-12)


def test_an_operand_strided_both_ways_is_copied_first():
    assert cublas_layout(3, 4, 8, 2) is None
