# GPU C thunks: the base class and register access shared by the thunk modules.
cimport numpy as cnp
from cpython.ref cimport PyObject

from vmc.gpu._gpu cimport MAXDIM, Device, GpuArray, Kernel, vmc_args

cdef extern from "Python.h":
    void _incref "Py_INCREF"(PyObject *o) noexcept
    void _xdecref "Py_XDECREF"(PyObject *o) noexcept

cdef enum:
    MAXOPS = 48        # inputs + outputs of one fused group


cdef inline object reg(PyObject **regs, int r):
    return <object>regs[r] if regs[r] != NULL else None


cdef inline void store(PyObject **regs, int r, object value) noexcept:
    cdef PyObject *old = regs[r]
    _incref(<PyObject *>value)
    regs[r] = <PyObject *>value
    _xdecref(old)


cdef class GThunk:
    cdef public str label
    cdef int run(self, PyObject **regs, const int *ins, const int *outs) except -1
    cpdef int n_outputs(self)


cdef class EwThunk(GThunk):
    cdef Device dev
    cdef Kernel kc, ks, krt, krg, krc
    cdef int nin, nout, nd, reduce
    cdef int in_type[MAXOPS]
    cdef int by_value[MAXOPS]
    cdef int out_type[MAXOPS]
    cdef int inplace[MAXOPS]
    cdef int out_size[MAXOPS]
    cdef char bcast[MAXOPS][MAXDIM]
    cdef char raxis[MAXDIM]
    cdef size_t groups_hint
    cdef int _loop_shape(self, PyObject **arrs, cnp.npy_intp *loop) except -1
    cdef int _shape_error(self, PyObject **arrs, int j, int d, cnp.npy_intp want) except -1
    cdef int _gather(self, PyObject **regs, const int *ins, PyObject **arrs, list keep,
                     vmc_args *vals) except -1
    cdef GpuArray _output(self, int q, PyObject **arrs, cnp.npy_intp *loop, PyObject **regs,
                          const int *ins)
    cdef int _run_elementwise(self, PyObject **arrs, cnp.npy_intp *loop, vmc_args *vals,
                              PyObject **regs, const int *ins, const int *outs) except -1
    cdef cnp.npy_intp _stride(self, GpuArray x, int d, cnp.npy_intp *loop) noexcept
    cdef bint _mergeable(self, PyObject **arrs, cnp.npy_intp st[MAXOPS][MAXDIM], int c, int d,
                         cnp.npy_intp *loop) noexcept
    cdef size_t _groups(self, cnp.npy_intp n, size_t local) noexcept
    cdef int _run_reduce(self, PyObject **arrs, cnp.npy_intp *loop, vmc_args *vals,
                         PyObject **regs, const int *outs) except -1
    cdef int _split_reduce(self, PyObject **arrs, cnp.npy_intp *loop, vmc_args *vals,
                           cnp.npy_intp n_out, cnp.npy_intp n_red, cnp.npy_intp n_split,
                           list res) except -1
    cdef int _pack_reduce(self, vmc_args *a, PyObject **arrs, cnp.npy_intp *loop,
                          vmc_args *vals, cnp.npy_intp n_out, cnp.npy_intp n_red,
                          cnp.npy_intp n_split, list res) except -1
