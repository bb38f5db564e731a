"""Matrix products on the device: Gemm, Gemv, Ger and Dot as C thunks.

Every product is one primitive, ``C = alpha * A @ B + beta * Z`` with A, B of
any element strides and C written C-contiguous (Z is C's old contents: the
update's target when it may be written in place, else a copy of it). CUDA
runs it with cuBLAS (``cublasSgemm_v2``/``cublasDgemm_v2`` by pointer from
libcublas, on the device's stream; TF32 only with ``config.gpu_tf32``);
OpenCL with the tiled GEMM kernel of the dialect (``kernels.GEMM``).

cuBLAS is column-major: a row-major C = A @ B is computed as C^T = B^T A^T,
each operand passed as stored ("N") or transposed ("T") from its strides; an
operand whose strides cuBLAS cannot describe is copied first.
"""
cimport numpy as cnp
from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t

from vmc.gpu._gpu cimport CUDA, Device, GpuArray, Kernel, empty, push_array, push_i64, view
from vmc.gpu._gpu cimport vmc_args, vmc_push
from vmc.gpu._gthunks cimport GThunk, reg, store

import numpy as np

cnp.import_array()

cdef extern from "dlfcn.h":
    void *dlopen(const char *name, int flags)
    void *dlsym(void *h, const char *name)
    int RTLD_NOW
    int RTLD_GLOBAL

ctypedef int (*sgemm_t)(void *h, int ta, int tb, int m, int n, int k, const float *alpha,
                        const void *A, int lda, const void *B, int ldb, const float *beta,
                        void *C, int ldc) nogil
ctypedef int (*dgemm_t)(void *h, int ta, int tb, int m, int n, int k, const double *alpha,
                        const void *A, int lda, const void *B, int ldb, const double *beta,
                        void *C, int ldc) nogil
ctypedef int (*create_t)(void **h) nogil
ctypedef int (*set_stream_t)(void *h, void *s) nogil
ctypedef int (*set_math_t)(void *h, int mode) nogil
ctypedef int (*set_workspace_t)(void *h, void *ws, size_t n) nogil

cdef sgemm_t _sgemm = NULL
cdef dgemm_t _dgemm = NULL
cdef set_math_t _set_math = NULL

cdef enum:
    GEMM = 0
    GEMV = 1
    GER = 2
    DOT = 3
    OP_N = 0
    OP_T = 1
    MATH_DEFAULT = 0
    MATH_TF32 = 3


MODES = {"gemm": GEMM, "gemv": GEMV, "ger": GER, "dot": DOT}


_LIB = []


def load_cublas(candidates=()):
    """The cuBLAS library handle (loaded once from the first of ``candidates``, paths
    or names, that loads); RuntimeError naming what is missing."""
    global _sgemm, _dgemm, _set_math
    cdef void *h = NULL
    if _LIB:
        return _LIB[0]
    for name in list(candidates) + ["libcublas.so.13", "libcublas.so.12", "libcublas.so"]:
        h = dlopen(name.encode(), RTLD_NOW | RTLD_GLOBAL)
        if h != NULL:
            break
    if h == NULL:
        raise RuntimeError("cuBLAS (libcublas.so.13) is not found: install the CUDA toolkit's "
                           "libraries or `pip install nvidia-cublas`")
    _sgemm = <sgemm_t>dlsym(h, "cublasSgemm_v2")
    _dgemm = <dgemm_t>dlsym(h, "cublasDgemm_v2")
    _set_math = <set_math_t>dlsym(h, "cublasSetMathMode")
    if _sgemm == NULL or _dgemm == NULL or _set_math == NULL:
        raise RuntimeError("libcublas lacks cublasSgemm_v2/cublasDgemm_v2/cublasSetMathMode")
    _LIB.append(<size_t>h)
    return <size_t>h


def cublas_handle(size_t lib, size_t stream, GpuArray workspace):
    """A cuBLAS handle on ``stream`` (the device's context current), with a
    workspace of our own so that nothing allocates while a CUDA graph is captured."""
    cdef void *h = NULL
    cdef create_t create = <create_t>dlsym(<void *>lib, "cublasCreate_v2")
    cdef set_stream_t set_stream = <set_stream_t>dlsym(<void *>lib, "cublasSetStream_v2")
    cdef set_workspace_t set_ws = <set_workspace_t>dlsym(<void *>lib, "cublasSetWorkspace_v2")
    if create == NULL or set_stream == NULL:
        raise RuntimeError("libcublas lacks cublasCreate_v2/cublasSetStream_v2")
    rc = create(&h)
    if rc != 0:
        raise RuntimeError(f"cublasCreate_v2 failed: status {rc}")
    rc = set_stream(h, <void *>stream)
    if rc != 0:
        raise RuntimeError(f"cublasSetStream_v2 failed: status {rc}")
    if set_ws != NULL and workspace is not None:
        rc = set_ws(h, <void *>(workspace.mem.handle + <uint64_t>workspace.offset),
                    workspace.size * workspace.itemsize)
        if rc != 0:
            raise RuntimeError(f"cublasSetWorkspace_v2 failed: status {rc}")
    return <size_t>h


cdef class MatmulThunk(GThunk):
    """One of Gemm, Gemv, Ger, Dot on the device, for one dtype (fields: _gblas.pxd)."""

    def __init__(self, Device dev, int mode, dtype, bint inplace, Kernel kernel, size_t blas,
                 bint tf32, str label, int nd0=2, int nd1=2):
        self.dev, self.mode, self.inplace, self.label = dev, mode, inplace, label
        self.typenum, self.itemsize = np.dtype(dtype).num, np.dtype(dtype).itemsize
        self.kernel, self.blas, self.tf32, self.nd0, self.nd1 = kernel, blas, tf32, nd0, nd1

    cdef GpuArray _arg(self, PyObject **regs, int r, int nd, str name):
        v = reg(regs, r)
        if type(v) is not GpuArray or (<GpuArray>v).typenum != self.typenum or \
                (<GpuArray>v).nd != nd:
            raise TypeError(f"{self.label}: {name} must be a {nd}-d GpuArray of "
                            f"{np.dtype(cnp.PyArray_DescrFromType(self.typenum))}, got {v!r}")
        return <GpuArray>v

    cdef double _scalar(self, PyObject **regs, int r):
        return float(np.asarray(reg(regs, r)))

    cdef int run(self, PyObject **regs, const int *ins, const int *outs) except -1:
        if self.mode == DOT:
            return self._dot(regs, ins, outs)
        if self.mode == GER:
            return self._ger(regs, ins, outs)
        return self._gemm(regs, ins, outs)

    cdef GpuArray _target(self, GpuArray z, double beta):
        """C: z itself when it may be written in place, else a copy (or, with
        beta 0, a new array: beta * z is not read)."""
        if self.inplace and z.c_contig():
            return z
        if beta == 0:
            return empty(self.dev, z.nd, z.dims, self.typenum)
        return z.copy()

    cdef int _gemm(self, PyObject **regs, const int *ins, const int *outs) except -1:
        cdef int vec = self.mode == GEMV
        cdef GpuArray z = self._arg(regs, ins[0], 1 if vec else 2, "z")
        cdef double alpha = self._scalar(regs, ins[1]), beta = self._scalar(regs, ins[4])
        cdef GpuArray a = self._arg(regs, ins[2], 2, "the first factor")
        cdef GpuArray b = self._arg(regs, ins[3], 1 if vec else 2, "the second factor")
        cdef Operand A, B
        cdef cnp.npy_intp n = 1 if vec else b.dims[1]
        set_operand(&A, a, a.dims[0], a.dims[1], a.strd[0], a.strd[1])
        if vec:
            set_operand(&B, b, b.dims[0], 1, b.strd[0], 0)
        else:
            set_operand(&B, b, b.dims[0], b.dims[1], b.strd[0], b.strd[1])
        if A.c != B.r or z.dims[0] != A.r or (not vec and z.dims[1] != n):
            raise ValueError(f"{self.label}: shapes {z.shape} (z), {a.shape}, {b.shape} do "
                             f"not match")
        c = self._target(z, beta)
        self.product(&A, &B, alpha, beta, <GpuArray>c, A.r, n)
        store(regs, outs[0], c)
        return 0

    cdef int _ger(self, PyObject **regs, const int *ins, const int *outs) except -1:
        cdef GpuArray z = self._arg(regs, ins[0], 2, "a")
        cdef double alpha = self._scalar(regs, ins[1])
        cdef GpuArray x = self._arg(regs, ins[2], 1, "x")
        cdef GpuArray y = self._arg(regs, ins[3], 1, "y")
        cdef Operand A, B
        if z.dims[0] != x.dims[0] or z.dims[1] != y.dims[0]:
            raise ValueError(f"{self.label}: shapes {z.shape}, {x.shape}, {y.shape} do not "
                             f"match")
        set_operand(&A, x, x.dims[0], 1, x.strd[0], 0)
        set_operand(&B, y, 1, y.dims[0], 0, y.strd[0])
        c = self._target(z, 1.0)
        self.product(&A, &B, alpha, 1.0, <GpuArray>c, A.r, B.c)
        store(regs, outs[0], c)
        return 0

    cdef int _dot(self, PyObject **regs, const int *ins, const int *outs) except -1:
        cdef GpuArray x = self._arg(regs, ins[0], self.nd0, "x")
        cdef GpuArray y = self._arg(regs, ins[1], self.nd1, "y")
        cdef Operand A, B
        cdef cnp.npy_intp dims[2]
        cdef int nd = 0
        if self.nd0 == 2:
            set_operand(&A, x, x.dims[0], x.dims[1], x.strd[0], x.strd[1])
            dims[nd] = x.dims[0]
            nd += 1
        else:
            set_operand(&A, x, 1, x.dims[0], 0, x.strd[0])
        if self.nd1 == 2:
            set_operand(&B, y, y.dims[0], y.dims[1], y.strd[0], y.strd[1])
            dims[nd] = y.dims[1]
            nd += 1
        else:
            set_operand(&B, y, y.dims[0], 1, y.strd[0], 0)
        if A.c != B.r:
            raise ValueError(f"{self.label}: shapes {x.shape} and {y.shape} are not aligned")
        c = empty(self.dev, nd, dims, self.typenum)
        self.product(&A, &B, 1.0, 0.0, <GpuArray>c, A.r, B.c)
        store(regs, outs[0], c)
        return 0

    cdef int product(self, Operand *A, Operand *B, double alpha, double beta, GpuArray c,
                     cnp.npy_intp m, cnp.npy_intp n) except -1:
        """c (C-contiguous m x n) = alpha * A @ B + beta * c."""
        cdef list keep = []
        if m == 0 or n == 0:
            return 0
        if self.dev.kind == CUDA:
            return self._cublas(A, B, alpha, beta, c, m, n, keep)
        return self._kernel(A, B, alpha, beta, c, m, n)

    cdef int _kernel(self, Operand *A, Operand *B, double alpha, double beta, GpuArray c,
                     cnp.npy_intp m, cnp.npy_intp n) except -1:
        cdef vmc_args a
        cdef float af = alpha, bf = beta
        cdef cnp.npy_intp tiles_m = (m + 15) // 16, tiles_n = (n + 15) // 16
        a.n = 0
        a.used = 0
        push_i64(&a, m)
        push_i64(&a, n)
        push_i64(&a, A.c)
        _push_real(&a, alpha, self.itemsize)
        _push_operand(&a, A, self.itemsize)
        _push_operand(&a, B, self.itemsize)
        _push_real(&a, beta, self.itemsize)
        push_array(&a, c)
        self.dev.launch(self.kernel, tiles_m * tiles_n, self.kernel.local, &a)
        return 0

    cdef int _cublas(self, Operand *A, Operand *B, double alpha, double beta, GpuArray c,
                     cnp.npy_intp m, cnp.npy_intp n, list keep) except -1:
        cdef int opa, opb, lda, ldb, rc
        cdef cnp.npy_intp k = A.c
        cdef float af = alpha, bf = beta
        cdef uint64_t pa, pb, pc
        # C^T (n x m) = B^T (n x k) @ A^T (k x m), column-major
        opb = _layout(self, B, keep, &ldb)
        opa = _layout(self, A, keep, &lda)
        pa = A.handle + <uint64_t>(A.off * self.itemsize)
        pb = B.handle + <uint64_t>(B.off * self.itemsize)
        pc = c.mem.handle + <uint64_t>c.offset
        self.dev.activate()
        _set_math(<void *>self.blas, MATH_TF32 if self.tf32 else MATH_DEFAULT)
        if self.typenum == cnp.NPY_FLOAT32:
            rc = _sgemm(<void *>self.blas, opb, opa, n, m, k, &af, <void *>pb, ldb,
                        <void *>pa, lda, &bf, <void *>pc, n)
        else:
            rc = _dgemm(<void *>self.blas, opb, opa, n, m, k, &alpha, <void *>pb, ldb,
                        <void *>pa, lda, &beta, <void *>pc, n)
        if rc != 0:
            raise RuntimeError(f"{self.label}: cuBLAS gemm failed with status {rc} "
                               f"(m={m}, n={n}, k={k})")
        return 0


cdef void set_operand(Operand *o, GpuArray x, cnp.npy_intp r, cnp.npy_intp c,
                      cnp.npy_intp s0, cnp.npy_intp s1) noexcept:
    """A logical r x c view of x; byte strides given, element strides kept."""
    o.arr = <PyObject *>x
    o.handle = x.mem.handle
    o.off = x.offset // x.itemsize
    o.r, o.c = r, c
    o.s0, o.s1 = s0 // x.itemsize, s1 // x.itemsize


cdef int _layout_of(cnp.npy_intp r, cnp.npy_intp c, cnp.npy_intp s0, cnp.npy_intp s1,
                    int *ld) noexcept:
    """cuBLAS's view of a logical r x c operand (element strides s0, s1) as its
    transpose, c x r column-major: OP_N with ld = s0 when rows are contiguous,
    OP_T with ld = s1 when columns are; -1 when neither (it must be copied)."""
    if (c == 1 or s1 == 1) and (r == 1 or s0 >= max(c, 1)):
        ld[0] = <int>(s0 if r > 1 else max(c, 1))
        return OP_N
    if (r == 1 or s0 == 1) and (c == 1 or s1 >= max(r, 1)):
        ld[0] = <int>(s1 if c > 1 else max(r, 1))
        return OP_T
    return -1


def cublas_layout(r, c, s0, s1):
    """(op, ld) that cuBLAS is given for an operand, or None when it is copied
    first: for tests, which check the mapping against a column-major emulation."""
    cdef int ld = 0
    op = _layout_of(r, c, s0, s1, &ld)
    return None if op < 0 else (op, ld)


def cublas_call(m, n, k, a_layout, b_layout):
    """The arguments ``_cublas`` gives cublas?gemm for C (m x n) = A (m x k) @ B (k x n):
    (transa, transb, m', n', k, lda', ldb', ldc) with cuBLAS's A' = our B, B' = our A."""
    opa, lda = a_layout
    opb, ldb = b_layout
    return opb, opa, n, m, k, ldb, lda, n


cdef int _layout(MatmulThunk t, Operand *o, list keep, int *ld) except -1:
    """``_layout_of`` of an operand; one it cannot describe becomes a copy."""
    cdef cnp.npy_intp r = o.r, c = o.c
    cdef GpuArray cp
    cdef cnp.npy_intp dims[2]
    cdef cnp.npy_intp strides[2]
    cdef int op = _layout_of(r, c, o.s0, o.s1, ld)
    if op >= 0:
        return op
    # a copy: gather through a strided view of the same memory
    dims[0], dims[1] = r, c
    strides[0], strides[1] = o.s0 * t.itemsize, o.s1 * t.itemsize
    cp = view(<GpuArray>o.arr, 2, dims, strides, o.off * t.itemsize).copy()
    keep.append(cp)
    o.handle, o.off, o.s0, o.s1 = cp.mem.handle, cp.offset // t.itemsize, c, 1
    ld[0] = <int>max(c, 1)
    return OP_N


cdef int _push_real(vmc_args *a, double v, int itemsize) except -1:
    cdef float f = v
    if itemsize == 4:
        vmc_push(a, &f, 4)
    else:
        vmc_push(a, &v, 8)
    return 0


cdef int _push_operand(vmc_args *a, Operand *o, int itemsize) except -1:
    vmc_push(a, &o.handle, 8)
    push_i64(a, o.off)
    push_i64(a, o.s0)
    push_i64(a, o.s1)
    return 0
