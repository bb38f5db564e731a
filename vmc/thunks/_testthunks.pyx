"""Tiny C thunks for the VM's tests and benchmarks (compiled functions do not use them).

``identity_thunk()`` measures pure dispatch; ``add_thunk()`` is a float64
``a + b`` (``b`` of ``a``'s shape or of size 1) that reuses its previous
output when nobody else holds it, the pattern real C thunks follow.
"""
cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New
from cpython.ref cimport PyObject
from libc.stdlib cimport calloc, free

from vmc.thunks._refs cimport _incref, _refcnt, _xdecref

cnp.import_array()

cdef extern from "vmc_thunk.h":
    pass


cdef int _identity(void *ctx, PyObject **regs, const int *ins, const int *outs) noexcept:
    cdef PyObject *v = regs[ins[0]]
    cdef PyObject *old = regs[outs[0]]
    _incref(v)
    regs[outs[0]] = v
    _xdecref(old)
    return 0


ctypedef struct AddCtx:
    PyObject *prev      # the previous output (owned), reused when only we hold it


cdef void _free_add_ctx(object capsule) noexcept:
    cdef AddCtx *c = <AddCtx*>PyCapsule_GetPointer(capsule, "vmc_ctx")
    _xdecref(c.prev)
    free(c)


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
    cdef AddCtx *c = <AddCtx*>ctx
    cdef cnp.ndarray a = _as_f64(regs[ins[0]], "a")
    cdef cnp.ndarray b = _as_f64(regs[ins[1]], "b")
    cdef cnp.ndarray out
    cdef Py_ssize_t i, n = cnp.PyArray_SIZE(a)
    cdef double *pa
    cdef double *pb
    cdef double *po
    if cnp.PyArray_SIZE(b) != 1 and not _same_shape(a, b):
        raise ValueError(f"add: shapes {(<object>a).shape} and {(<object>b).shape} differ")
    if c.prev != NULL and _refcnt(c.prev) == 1 and _same_shape(<cnp.ndarray>c.prev, a):
        out = <cnp.ndarray>c.prev
    else:
        out = cnp.PyArray_EMPTY(a.ndim, a.shape, cnp.NPY_DOUBLE, 0)
        _xdecref(c.prev)
        c.prev = <PyObject*>out
        _incref(c.prev)
    pa, pb, po = <double*>cnp.PyArray_DATA(a), <double*>cnp.PyArray_DATA(b), <double*>cnp.PyArray_DATA(out)
    if cnp.PyArray_SIZE(b) == 1:
        for i in range(n):
            po[i] = pa[i] + pb[0]
    else:
        for i in range(n):
            po[i] = pa[i] + pb[i]
    cdef PyObject *old = regs[outs[0]]
    _incref(<PyObject*>out)
    regs[outs[0]] = <PyObject*>out
    _xdecref(old)
    return 0


cdef object _cthunk(void *fn, object ctx):
    # Imported here, not at module level: vmc.compile may import the thunks.
    from vmc.compile.program import CThunk
    return CThunk(fn=PyCapsule_New(fn, "vmc_thunk", NULL), ctx=ctx)


def identity_thunk():
    """A C thunk that copies its input register to its output register."""
    return _cthunk(<void*>_identity, None)


def add_thunk():
    """A C thunk computing ``a + b`` for C-contiguous float64 arrays."""
    cdef AddCtx *c = <AddCtx*>calloc(1, sizeof(AddCtx))
    if c == NULL:
        raise MemoryError()
    return _cthunk(<void*>_add, PyCapsule_New(c, "vmc_ctx", _free_add_ctx))
