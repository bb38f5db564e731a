# Matrix products on the device (_gblas.pyx): the thunk and its one primitive,
# shared with the thunks that are built on a GEMM (_gconv.pyx: im2col conv).
cimport numpy as cnp
from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t

from vmc.gpu._gpu cimport Device, GpuArray, Kernel
from vmc.gpu._gthunks cimport GThunk

ctypedef struct Operand:    # a logical r x c matrix of elements at handle + off + i*s0 + j*s1
    PyObject *arr           # the GpuArray it reads (borrowed)
    uint64_t handle
    cnp.npy_intp off, r, c, s0, s1


cdef class MatmulThunk(GThunk):
    cdef Device dev
    cdef int mode, typenum, itemsize, inplace, tf32, nd0, nd1
    cdef Kernel kernel              # OpenCL: the tiled GEMM for this dtype
    cdef size_t blas                # CUDA: the cuBLAS handle
    cdef GpuArray _arg(self, PyObject **regs, int r, int nd, str name)
    cdef double _scalar(self, PyObject **regs, int r)
    cdef GpuArray _target(self, GpuArray z, double beta)
    cdef int _gemm(self, PyObject **regs, const int *ins, const int *outs) except -1
    cdef int _ger(self, PyObject **regs, const int *ins, const int *outs) except -1
    cdef int _dot(self, PyObject **regs, const int *ins, const int *outs) except -1
    # c (C-contiguous m x n, a view is fine) = alpha * A @ B + beta * c
    cdef int product(self, Operand *A, Operand *B, double alpha, double beta, GpuArray c,
                     cnp.npy_intp m, cnp.npy_intp n) except -1
    cdef int _kernel(self, Operand *A, Operand *B, double alpha, double beta, GpuArray c,
                     cnp.npy_intp m, cnp.npy_intp n) except -1
    cdef int _cublas(self, Operand *A, Operand *B, double alpha, double beta, GpuArray c,
                     cnp.npy_intp m, cnp.npy_intp n, list keep) except -1


# o = the logical r x c view of x at byte strides s0, s1 from x's first element
cdef void set_operand(Operand *o, GpuArray x, cnp.npy_intp r, cnp.npy_intp c,
                      cnp.npy_intp s0, cnp.npy_intp s1) noexcept
