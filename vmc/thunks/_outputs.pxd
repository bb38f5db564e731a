# Outputs and registers of vmc's Cython C thunks (_blas, _nnet, _shapes): the ctx that
# keeps a thunk's last outputs for reuse, allocation from the elementwise
# driver's block cache, and register access under the ABI of vmc_thunk.h.
cimport numpy as cnp
from cpython.ref cimport PyObject

from vmc.thunks._refs cimport _incref, _xdecref

cdef enum:
    OUT_SLOTS = 3           # outputs of one thunk kept for reuse

ctypedef struct Ctx:
    PyObject *prev[OUT_SLOTS]   # the last output of each slot (owned), or NULL
    int flags                   # the factory's own (in place, ...)

cdef object new_array(int nd, cnp.npy_intp *dims, int typenum)
cdef cnp.ndarray output(Ctx *c, int slot, int nd, cnp.npy_intp *dims, int typenum)
cdef object cthunk(void *fn, int flags, size_t size=*, object keepalive=*)
cdef void *ctx_of(object thunk) except NULL


cdef inline object reg(PyObject **regs, int r):
    return <object>regs[r] if regs[r] != NULL else None


cdef inline int store(PyObject **regs, int r, object value) except -1:
    cdef PyObject *old = regs[r]
    _incref(<PyObject*>value)
    regs[r] = <PyObject*>value
    _xdecref(old)
    return 0
