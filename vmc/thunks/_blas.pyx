"""C thunks for matrix products, calling ``scipy.linalg.cython_blas`` directly.

Each factory returns a ``CThunk`` (the ABI of ``vmc_thunk.h``) with a private
ctx; the registers each one reads are listed in its docstring.

Layouts: BLAS is column-major. A 2-d operand whose elements are unit-strided
along one axis is handed to BLAS as it is, with a transpose flag when it is
row-major; only other layouts (strided both ways, negative or zero steps,
misaligned) are copied first. A row-major ``C = A @ B`` is computed as the
column-major ``C^T = B^T @ A^T``. Vectors may have any non-zero stride,
negative ones included (BLAS's ``inc``).

Outputs are new C-contiguous arrays unless the thunk is in place, reused
from call to call as ``vmc.thunks._outputs`` describes.

float32 and float64 operands of one dtype go to BLAS; any other combination
runs through numpy with the same semantics. As in BLAS, ``beta == 0`` means
``Z`` is not read (a NaN there does not propagate).
"""
cimport numpy as cnp
from cpython.ref cimport PyObject
from libc.limits cimport INT_MAX

from vmc.thunks._outputs cimport Ctx, cthunk, output, reg, store
from scipy.linalg.cython_blas cimport ddot, dgemm, dgemv, dger, sdot, sgemm, sgemv, sger

import numpy as np

cnp.import_array()

cdef extern from "vmc_thunk.h":
    pass

from vmc.thunks._outputs import REUSE_MAX_BYTES  # noqa: F401 (part of this API)
# Multiply-adds above which the GIL is released around the BLAS call; below,
# releasing and re-taking it costs more than it lets other threads gain.
cdef double _NOGIL_FLOPS = 1e5


# ---------------------------------------------------------------- layouts

ctypedef struct Mat:
    char *data          # element (0, 0)
    int rows
    int cols
    int ld              # leading dimension, in elements
    bint rowmajor       # (i, j) at i*ld + j; else at i + j*ld

ctypedef struct Vec:
    char *data          # lowest address, as BLAS expects for a negative inc
    int n
    int inc             # in elements, never 0


cdef bint _as_mat(cnp.ndarray a, Mat *m) noexcept:
    """Describe a 2-d array as BLAS can take it; False when it must be copied."""
    cdef Py_ssize_t r = a.shape[0], c = a.shape[1], size = cnp.PyArray_ITEMSIZE(a)
    cdef Py_ssize_t s0 = a.strides[0], s1 = a.strides[1], e0, e1
    if s0 % size or s1 % size or not cnp.PyArray_ISALIGNED(a):
        return False
    e0, e1 = s0 // size, s1 // size
    m.data, m.rows, m.cols = <char*>cnp.PyArray_DATA(a), <int>r, <int>c
    if (e1 == 1 or c == 1) and (r == 1 or e0 >= max(c, 1)):
        m.rowmajor, m.ld = True, <int>(e0 if r > 1 else max(c, 1))
        return e0 <= INT_MAX
    if (e0 == 1 or r == 1) and (c == 1 or e1 >= max(r, 1)):
        m.rowmajor, m.ld = False, <int>(e1 if c > 1 else max(r, 1))
        return e1 <= INT_MAX
    return False


cdef bint _as_vec(cnp.ndarray a, Vec *v) noexcept:
    """Describe a 1-d array as a BLAS vector; False when it must be copied."""
    cdef Py_ssize_t n = a.shape[0], s = a.strides[0], size = cnp.PyArray_ITEMSIZE(a)
    cdef Py_ssize_t e = s // size
    if s % size or not cnp.PyArray_ISALIGNED(a):
        return False
    if n <= 1:
        e = 1
    if e == 0 or e > INT_MAX or -e > INT_MAX:
        return False
    v.n, v.inc = <int>n, <int>e
    v.data = <char*>cnp.PyArray_DATA(a) + (0 if e > 0 else (n - 1) * s)
    return True


cdef cnp.ndarray _mat(cnp.ndarray a, Mat *m):
    """``a``, or a C-contiguous copy of it when BLAS cannot take its layout;
    the caller keeps the returned array alive while BLAS reads it. The copy
    is a new array (``np.ascontiguousarray`` would hand back a misaligned
    C-contiguous array unchanged, and ``m`` would stay unset)."""
    if not _as_mat(a, m):
        a = np.array(a, order="C")
        if not _as_mat(a, m):
            raise ValueError(f"BLAS cannot take a matrix of shape {(<object>a).shape}")
    return a


cdef cnp.ndarray _vec(cnp.ndarray a, Vec *v):
    """As ``_mat``, for a vector."""
    if not _as_vec(a, v):
        a = np.array(a, order="C")
        if not _as_vec(a, v):
            raise ValueError(f"BLAS cannot take a vector of shape {(<object>a).shape}")
    return a


cdef void _extent(cnp.ndarray a, char **lo, char **hi) noexcept:
    """The bytes an array can touch: [lo, hi)."""
    cdef int d
    cdef Py_ssize_t step
    lo[0] = hi[0] = <char*>cnp.PyArray_DATA(a)
    for d in range(a.ndim):
        step = a.strides[d] * (a.shape[d] - 1)
        if step < 0:
            lo[0] += step
        else:
            hi[0] += step
    hi[0] += cnp.PyArray_ITEMSIZE(a)


cdef bint _overlap(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef char *alo
    cdef char *ahi
    cdef char *blo
    cdef char *bhi
    _extent(a, &alo, &ahi)
    _extent(b, &blo, &bhi)
    return alo < bhi and blo < ahi


# ------------------------------------------------------------ BLAS calls

cdef void _gemm_raw(bint f32, char ta, char tb, int m, int n, int k, double alpha,
                    char *a, int lda, char *b, int ldb, double beta,
                    char *c, int ldc) noexcept nogil:
    cdef float fa = <float>alpha, fb = <float>beta
    if f32:
        sgemm(&ta, &tb, &m, &n, &k, &fa, <float*>a, &lda, <float*>b, &ldb,
              &fb, <float*>c, &ldc)
    else:
        dgemm(&ta, &tb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb,
              &beta, <double*>c, &ldc)


cdef void _gemm(bint f32, const Mat *A, const Mat *B, const Mat *C,
                double alpha, double beta) noexcept nogil:
    """C = alpha A @ B + beta C, whatever the layouts of the three."""
    if C.rowmajor:      # C^T = B^T @ A^T in BLAS's column-major terms
        _gemm_raw(f32, b'N' if B.rowmajor else b'T', b'N' if A.rowmajor else b'T',
                  C.cols, C.rows, A.cols, alpha, B.data, B.ld, A.data, A.ld,
                  beta, C.data, C.ld)
    else:
        _gemm_raw(f32, b'T' if A.rowmajor else b'N', b'T' if B.rowmajor else b'N',
                  C.rows, C.cols, A.cols, alpha, A.data, A.ld, B.data, B.ld,
                  beta, C.data, C.ld)


cdef void _gemv(bint f32, const Mat *A, bint transpose, const Vec *x, const Vec *y,
                double alpha, double beta) noexcept nogil:
    """y = alpha op(A) @ x + beta y with op(A) = A.T when ``transpose``."""
    # A row-major matrix is its transpose in column-major terms.
    cdef char trans = b'T' if A.rowmajor != transpose else b'N'
    cdef int m = A.cols if A.rowmajor else A.rows
    cdef int n = A.rows if A.rowmajor else A.cols
    cdef int lda = A.ld, incx = x.inc, incy = y.inc
    cdef float fa = <float>alpha, fb = <float>beta
    if f32:
        sgemv(&trans, &m, &n, &fa, <float*>A.data, &lda, <float*>x.data, &incx,
              &fb, <float*>y.data, &incy)
    else:
        dgemv(&trans, &m, &n, &alpha, <double*>A.data, &lda, <double*>x.data, &incx,
              &beta, <double*>y.data, &incy)


cdef void _ger(bint f32, const Mat *A, const Vec *x, const Vec *y,
               double alpha) noexcept nogil:
    """A += alpha outer(x, y)."""
    cdef float fa = <float>alpha
    cdef int m = A.rows, n = A.cols, lda = A.ld, incx = x.inc, incy = y.inc
    cdef char *xd = x.data
    cdef char *yd = y.data
    if A.rowmajor:      # A^T += alpha outer(y, x)
        m, n, xd, yd, incx, incy = n, m, yd, xd, incy, incx
    if f32:
        sger(&m, &n, &fa, <float*>xd, &incx, <float*>yd, &incy, <float*>A.data, &lda)
    else:
        dger(&m, &n, &alpha, <double*>xd, &incx, <double*>yd, &incy, <double*>A.data, &lda)


cdef double _dot_raw(bint f32, const Vec *x, const Vec *y) noexcept nogil:
    cdef int n = x.n, incx = x.inc, incy = y.inc
    if f32:
        return sdot(&n, <float*>x.data, &incx, <float*>y.data, &incy)
    return ddot(&n, <double*>x.data, &incx, <double*>y.data, &incy)


# ----------------------------------------------------- outputs and checks

cdef int _blas_type(tuple arrays, tuple ndims) except -2:
    """The common typenum (NPY_FLOAT/NPY_DOUBLE) when every operand is an
    exact, native-order, non-empty ndarray of that dtype and of the given rank,
    with sizes a BLAS int holds; -1 when numpy must do the work instead."""
    cdef cnp.ndarray a
    cdef int t = -1, d
    for obj, nd in zip(arrays, ndims):
        if type(obj) is not np.ndarray:
            return -1
        a = obj
        if a.ndim != nd or cnp.PyArray_ISBYTESWAPPED(a):
            return -1
        if t == -1:
            t = cnp.PyArray_TYPE(a)
            if t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE:
                return -1
        elif cnp.PyArray_TYPE(a) != t:
            return -1
        for d in range(nd):
            if a.shape[d] == 0 or a.shape[d] > INT_MAX:
                return -1
    return t


cdef int _mismatch(str op, str what, tuple a, tuple b) except -1:
    raise ValueError(f"{op}: shapes {a} and {b} do not match ({what})")


cdef inline bint _big(double flops) noexcept:
    return flops >= _NOGIL_FLOPS


# ------------------------------------------------------------------- dot

cdef object _np_dot(x, y):
    r = np.dot(x, y)
    return r if isinstance(r, np.ndarray) else np.asarray(r)


cdef object _dot(Ctx *c, x, y):
    """np.dot for vectors and matrices, through BLAS where it applies."""
    cdef cnp.ndarray a, b, out
    cdef Mat A, B, C
    cdef Vec X, Y
    cdef cnp.npy_intp dims[2]
    cdef int t, nda, ndb
    cdef bint f32
    if (type(x) is not np.ndarray or type(y) is not np.ndarray
            or not 1 <= (<cnp.ndarray>x).ndim <= 2 or not 1 <= (<cnp.ndarray>y).ndim <= 2):
        return _np_dot(x, y)
    a, b = x, y
    nda, ndb = a.ndim, b.ndim
    if a.shape[nda - 1] != b.shape[0]:
        _mismatch("dot", f"{a.shape[nda - 1]} (dim {nda - 1}) != {b.shape[0]} (dim 0)",
                  x.shape, y.shape)
    t = _blas_type((a, b), (nda, ndb))
    if t < 0:
        return _np_dot(a, b)
    f32 = t == cnp.NPY_FLOAT
    if nda == 2 and ndb == 2:
        a, b = _mat(a, &A), _mat(b, &B)
        dims[0], dims[1] = A.rows, B.cols
        out = output(c, 0, 2, dims, t)
        _as_mat(out, &C)
        if _big(<double>A.rows * A.cols * B.cols):
            with nogil:
                _gemm(f32, &A, &B, &C, 1.0, 0.0)
        else:
            _gemm(f32, &A, &B, &C, 1.0, 0.0)
    elif nda == 2 or ndb == 2:      # matrix @ vector, or vector @ matrix = M.T @ v
        if nda == 2:
            a, b = _mat(a, &A), _vec(b, &X)
        else:
            a, b = _mat(b, &A), _vec(a, &X)
        dims[0] = A.rows if nda == 2 else A.cols
        out = output(c, 0, 1, dims, t)
        _as_vec(out, &Y)
        _gemv(f32, &A, nda == 1, &X, &Y, 1.0, 0.0)
    else:
        a, b = _vec(a, &X), _vec(b, &Y)
        out = output(c, 0, 0, dims, t)
        if f32:
            (<float*>cnp.PyArray_DATA(out))[0] = <float>_dot_raw(True, &X, &Y)
        else:
            (<double*>cnp.PyArray_DATA(out))[0] = _dot_raw(False, &X, &Y)
    return out


cdef int _dot_thunk(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: x, y -> np.dot(x, y)
    return store(regs, outs[0], _dot(<Ctx*>ctx, reg(regs, ins[0]), reg(regs, ins[1])))


# ------------------------------------------------------ gemm, gemv, ger

cdef cnp.ndarray _target(Ctx *c, bint inplace, str op, cnp.ndarray z, bint read_z,
                         tuple inputs):
    """Where an update ``z <- f(z, inputs)`` writes: ``z`` itself when in place
    and BLAS can write its layout without aliasing an input; else a C-contiguous
    array holding ``z``'s values when ``read_z`` (a temporary when in place,
    the reusable output otherwise). A read-only ``z`` (a shared value the
    user set with ``borrow=True``) is not written: the result goes to a new
    array, as elementwise updates do, so the call cannot fail on it."""
    cdef cnp.ndarray out
    if inplace and cnp.PyArray_ISWRITEABLE(z):
        for x in inputs:
            if _overlap(z, x):
                return np.array(z, order="C")
        if _writable_layout(z):
            return z
        return np.array(z, order="C")
    out = output(c, 0, z.ndim, z.shape, cnp.PyArray_TYPE(z))
    if read_z:
        cnp.PyArray_CopyInto(out, z)
    return out


cdef bint _writable_layout(cnp.ndarray z) noexcept:
    cdef Mat m
    cdef Vec v
    return _as_mat(z, &m) if z.ndim == 2 else _as_vec(z, &v)


cdef object _finish(bint inplace, cnp.ndarray z, cnp.ndarray out):
    """In place through a temporary: copy the result back into ``z`` (unless
    ``z`` is read-only, see ``_target``)."""
    if inplace and out is not z and cnp.PyArray_ISWRITEABLE(z):
        cnp.PyArray_CopyInto(z, out)
        return z
    return out


cdef bint _writeable(z):
    return isinstance(z, np.ndarray) and z.flags.writeable


cdef object _gemm_numpy(bint inplace, z, alpha, x, y, beta):
    res = np.asarray(z * beta + alpha * np.dot(x, y))
    if inplace and _writeable(z):
        z[...] = res
        return z
    return res


cdef object _gemm_update(Ctx *c, bint inplace, z, alpha, x, y, beta):
    """z * beta + alpha * x @ y, written into z when ``inplace``."""
    cdef cnp.ndarray Z, X, Y, out
    cdef Mat A, B, C
    cdef double a, b
    cdef int t
    op = "gemm_inplace" if inplace else "gemm"
    t = _blas_type((z, x, y), (2, 2, 2))
    if t < 0:
        return _gemm_numpy(inplace, z, alpha, x, y, beta)
    a, b = alpha, beta
    Z, X, Y = z, x, y
    if X.shape[1] != Y.shape[0]:
        _mismatch(op, "x @ y", x.shape, y.shape)
    if Z.shape[0] != X.shape[0] or Z.shape[1] != Y.shape[1]:
        _mismatch(op, "z and x @ y", z.shape, (X.shape[0], Y.shape[1]))
    X, Y = _mat(X, &A), _mat(Y, &B)
    out = _target(c, inplace, op, Z, b != 0.0, (X, Y))
    _as_mat(out, &C)
    if _big(<double>A.rows * A.cols * B.cols):
        with nogil:
            _gemm(t == cnp.NPY_FLOAT, &A, &B, &C, a, b)
    else:
        _gemm(t == cnp.NPY_FLOAT, &A, &B, &C, a, b)
    return _finish(inplace, Z, out)


cdef object _gemv_update(Ctx *c, bint inplace, z, alpha, m, x, beta):
    """z * beta + alpha * m @ x, written into z when ``inplace``."""
    cdef cnp.ndarray Z, M, X, out
    cdef Mat A
    cdef Vec V, Y
    cdef double a, b
    cdef int t
    op = "gemv_inplace" if inplace else "gemv"
    t = _blas_type((z, m, x), (1, 2, 1))
    if t < 0:
        return _gemm_numpy(inplace, z, alpha, m, x, beta)
    a, b = alpha, beta
    Z, M, X = z, m, x
    if M.shape[1] != X.shape[0]:
        _mismatch(op, "a @ x", m.shape, x.shape)
    if Z.shape[0] != M.shape[0]:
        _mismatch(op, "z and a @ x", z.shape, (M.shape[0],))
    M, X = _mat(M, &A), _vec(X, &V)
    out = _target(c, inplace, op, Z, b != 0.0, (M, X))
    _as_vec(out, &Y)
    if _big(<double>A.rows * A.cols):
        with nogil:
            _gemv(t == cnp.NPY_FLOAT, &A, False, &V, &Y, a, b)
    else:
        _gemv(t == cnp.NPY_FLOAT, &A, False, &V, &Y, a, b)
    return _finish(inplace, Z, out)


cdef object _ger_update(Ctx *c, bint inplace, m, alpha, x, y):
    """m + alpha * outer(x, y), written into m when ``inplace``."""
    cdef cnp.ndarray M, X, Y, out
    cdef Mat A
    cdef Vec U, V
    cdef double a
    cdef int t
    op = "ger_inplace" if inplace else "ger"
    t = _blas_type((m, x, y), (2, 1, 1))
    if t < 0:
        res = np.asarray(m + alpha * np.outer(x, y))
        if inplace and _writeable(m):
            m[...] = res
            return m
        return res
    a = alpha
    M, X, Y = m, x, y
    if M.shape[0] != X.shape[0] or M.shape[1] != Y.shape[0]:
        _mismatch(op, "a and outer(x, y)", m.shape, (X.shape[0], Y.shape[0]))
    X, Y = _vec(X, &U), _vec(Y, &V)
    out = _target(c, inplace, op, M, True, (X, Y))
    _as_mat(out, &A)
    if _big(<double>A.rows * A.cols):
        with nogil:
            _ger(t == cnp.NPY_FLOAT, &A, &U, &V, a)
    else:
        _ger(t == cnp.NPY_FLOAT, &A, &U, &V, a)
    return _finish(inplace, M, out)


cdef int _gemm_thunk(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: z, alpha, x, y, beta -> z * beta + alpha * x @ y; ctx flags: in place
    cdef Ctx *c = <Ctx*>ctx
    return store(regs, outs[0], _gemm_update(
        c, c.flags, reg(regs, ins[0]), reg(regs, ins[1]), reg(regs, ins[2]),
        reg(regs, ins[3]), reg(regs, ins[4])))


cdef int _gemv_thunk(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: z, alpha, a, x, beta -> z * beta + alpha * a @ x; ctx flags: in place
    cdef Ctx *c = <Ctx*>ctx
    return store(regs, outs[0], _gemv_update(
        c, c.flags, reg(regs, ins[0]), reg(regs, ins[1]), reg(regs, ins[2]),
        reg(regs, ins[3]), reg(regs, ins[4])))


cdef int _ger_thunk(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: a, alpha, x, y -> a + alpha * outer(x, y); ctx flags: in place
    cdef Ctx *c = <Ctx*>ctx
    return store(regs, outs[0], _ger_update(
        c, c.flags, reg(regs, ins[0]), reg(regs, ins[1]), reg(regs, ins[2]),
        reg(regs, ins[3])))


# -------------------------------------------------------------- factories

def dot_thunk():
    """``np.dot(x, y)`` for vectors and matrices (registers: x, y)."""
    return cthunk(<void*>_dot_thunk, False)


def gemm_thunk(bint inplace=False):
    """``z * beta + alpha * x @ y`` (registers: z, alpha, x, y, beta), into z
    when ``inplace``; alpha and beta are 0-d arrays or scalars."""
    return cthunk(<void*>_gemm_thunk, inplace)


def gemv_thunk(bint inplace=False):
    """``z * beta + alpha * a @ x`` (registers: z, alpha, a, x, beta), into z
    when ``inplace``."""
    return cthunk(<void*>_gemv_thunk, inplace)


def ger_thunk(bint inplace=False):
    """``a + alpha * outer(x, y)`` (registers: a, alpha, x, y), into a when
    ``inplace``."""
    return cthunk(<void*>_ger_thunk, inplace)
