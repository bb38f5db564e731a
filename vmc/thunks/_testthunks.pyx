"""Tiny C thunks for the VM's tests and benchmarks (compiled functions do not use them).

``identity_thunk()`` measures pure dispatch; ``add_thunk()`` is a float64
``a + b`` (``b`` of ``a``'s shape or of size 1) that reuses its previous
output when nobody else holds it (``vmc.thunks._outputs``, as the real C
thunks do).
"""
cimport numpy as cnp
from cpython.ref cimport PyObject

from vmc.thunks._outputs cimport Ctx, cthunk, output, reg, store

cnp.import_array()


cdef int _identity(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    return store(regs, outs[0], reg(regs, ins[0]))


cdef cnp.ndarray _as_f64(PyObject *p, str which):
    if p == NULL or type(<object>p) is not cnp.ndarray:
        raise TypeError(f"add: {which} must be a numpy array")
    cdef cnp.ndarray a = <cnp.ndarray>p
    if cnp.PyArray_TYPE(a) != cnp.NPY_DOUBLE or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise TypeError(f"add: {which} must be a C-contiguous float64 array, got {a.dtype}")
    return a


cdef inline bint _same_shape(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef int k
    if a.ndim != b.ndim:
        return False
    for k in range(a.ndim):
        if a.shape[k] != b.shape[k]:
            return False
    return True


cdef int _add(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    cdef cnp.ndarray a = _as_f64(regs[ins[0]], "a")
    cdef cnp.ndarray b = _as_f64(regs[ins[1]], "b")
    cdef cnp.ndarray out
    cdef Py_ssize_t i, n = cnp.PyArray_SIZE(a)
    cdef double *pa
    cdef double *pb
    cdef double *po
    if cnp.PyArray_SIZE(b) != 1 and not _same_shape(a, b):
        raise ValueError(f"add: shapes {(<object>a).shape} and {(<object>b).shape} differ")
    out = output(<Ctx*>ctx, 0, a.ndim, a.shape, cnp.NPY_DOUBLE)
    pa, pb, po = <double*>cnp.PyArray_DATA(a), <double*>cnp.PyArray_DATA(b), <double*>cnp.PyArray_DATA(out)
    if cnp.PyArray_SIZE(b) == 1:
        for i in range(n):
            po[i] = pa[i] + pb[0]
    else:
        for i in range(n):
            po[i] = pa[i] + pb[i]
    return store(regs, outs[0], out)


def identity_thunk():
    """A C thunk that copies its input register to its output register."""
    return cthunk(<void*>_identity, 0)


def add_thunk():
    """A C thunk computing ``a + b`` for C-contiguous float64 arrays."""
    return cthunk(<void*>_add, 0)
