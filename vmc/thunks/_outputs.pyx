"""Outputs of vmc's Cython C thunks (``_blas``, ``_nnet``, ``_shapes``).

A thunk's ctx keeps its last output of each slot and writes into it again on
the next call when the shape and dtype match and its reference count shows
that nobody else holds it (so an array handed to a user is never written
again); only outputs under ``REUSE_MAX_BYTES`` are kept, so that freeing a
large intermediate really frees its memory. New arrays come from the
elementwise driver's cache of freed blocks when it is built.
"""
cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New
from cpython.ref cimport PyObject
from libc.stdlib cimport calloc, free

from vmc.thunks._refs cimport _incref, _refcnt, _xdecref

cnp.import_array()

from vmc.thunks.cgen.elemwise import REUSE_MAX_BYTES   # the generated kernels' bound too
cdef Py_ssize_t _REUSE_MAX = REUSE_MAX_BYTES


cdef void _free_ctx(object capsule) noexcept:
    cdef Ctx *c = <Ctx*>PyCapsule_GetPointer(capsule, "vmc_ctx")
    cdef int k
    if c != NULL:
        for k in range(OUT_SLOTS):
            _xdecref(c.prev[k])
        free(c)


cdef object cthunk(void *fn, int flags, size_t size=0, object keepalive=None):
    """A ``CThunk`` running ``fn`` with a fresh zeroed ctx holding ``flags``.
    A thunk with more state allocates ``size`` bytes, a struct that begins
    with a ``Ctx``; ``keepalive`` holds the Python objects it points to."""
    # Imported here, not at module level: vmc.compile may import the thunks.
    from vmc.program import CThunk
    cdef Ctx *c = <Ctx*>calloc(1, max(size, sizeof(Ctx)))
    if c == NULL:
        raise MemoryError()
    c.flags = flags
    ctx = PyCapsule_New(c, "vmc_ctx", _free_ctx)
    return CThunk(fn=PyCapsule_New(fn, "vmc_thunk", NULL), ctx=ctx, keepalive=keepalive)


cdef void *ctx_of(object thunk) except NULL:
    """The ctx of a ``CThunk`` made by ``cthunk``, to fill in its own fields."""
    return PyCapsule_GetPointer(thunk.ctx, "vmc_ctx")


ctypedef PyObject *(*NewArrayFn)(int, cnp.npy_intp *, int)
cdef NewArrayFn _block_new_array = NULL


cdef object new_array(int nd, cnp.npy_intp *dims, int typenum):
    """A new C-contiguous array; large ones from the elementwise driver's cache
    of freed blocks (vmc_blocks.h: no page faults on repeated calls, never a
    higher peak) when it is built."""
    cdef PyObject *o
    cdef object result
    if _block_new_array == NULL:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    o = _block_new_array(nd, dims, typenum)
    if o == NULL:
        raise MemoryError(f"cannot allocate an array of typenum {typenum}")
    result = <object>o          # takes a reference of its own
    _xdecref(o)
    return result


try:
    from vmc.thunks.cgen import _ew_runtime
    _block_new_array = <NewArrayFn>PyCapsule_GetPointer(_ew_runtime.new_array, "vmc_new_array")
except ImportError:
    pass


cdef cnp.ndarray output(Ctx *c, int slot, int nd, cnp.npy_intp *dims, int typenum):
    """A C-contiguous array to write a result into: the slot's last one when
    only the ctx holds it and it fits, else a new one (kept if small)."""
    cdef cnp.ndarray prev
    cdef int d
    cdef PyObject *p = c.prev[slot]
    if p != NULL and _refcnt(p) == 1:
        prev = <cnp.ndarray>p
        if (prev.ndim == nd and cnp.PyArray_TYPE(prev) == typenum
                and cnp.PyArray_ISWRITEABLE(prev)):
            for d in range(nd):
                if prev.shape[d] != dims[d]:
                    break
            else:
                return prev
    out = <cnp.ndarray>new_array(nd, dims, typenum)
    _xdecref(c.prev[slot])
    c.prev[slot] = NULL
    if cnp.PyArray_NBYTES(out) <= _REUSE_MAX:
        c.prev[slot] = <PyObject*>out
        _incref(c.prev[slot])
    return out
