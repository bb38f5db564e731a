"""C thunks that only look at shapes and strides: DimShuffle's views, Shape_i,
and the shape checks that run before several late in-place updates.

As Python thunks each costs one to a few microseconds, and more right after
a big BLAS call has pushed the interpreter's own data out of the caches (a
training step runs several of them between its gemms); here each is a few
hundred nanoseconds.
"""
cimport numpy as cnp
from cpython.ref cimport PyObject

from vmc.thunks._outputs cimport Ctx, ctx_of, cthunk, output, reg, store

import numpy as np

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    int PyArray_SetBaseObject(cnp.ndarray arr, object base) except -1
    object PyArray_NewFromDescr(type subtype, cnp.dtype descr, int nd, cnp.npy_intp *dims,
                                cnp.npy_intp *strides, void *data, int flags, object obj)

cdef enum:
    MAX_DIMS = 64       # NPY_MAXDIMS of numpy 2
    MAX_TERMS = 64      # equalities of one check thunk


cdef cnp.ndarray _array(x):
    return x if type(x) is np.ndarray else cnp.PyArray_FROMANY(x, cnp.NPY_NOTYPE, 0, 0, 0)


# ---------------------------------------------------------------- DimShuffle

ctypedef struct Shuffle:
    Ctx base
    int in_ndim
    int out_ndim
    int order[MAX_DIMS]     # input dim of each output dim, -1 for a new 'x' dim
    int drop[MAX_DIMS]      # 1 for each input dim that is dropped (static length 1)


cdef int _dimshuffle_fn(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: x -> the view of x with dims reordered, inserted and dropped
    cdef Shuffle *c = <Shuffle*>ctx
    x = reg(regs, ins[0])
    cdef cnp.ndarray a = _array(x)
    cdef cnp.npy_intp dims[MAX_DIMS]
    cdef cnp.npy_intp strides[MAX_DIMS]
    cdef cnp.npy_intp step = cnp.PyArray_ITEMSIZE(a)
    cdef int d, k
    if a.ndim != c.in_ndim:
        raise ValueError(f"DimShuffle: expected a {c.in_ndim}-d array, got shape "
                         f"{np.shape(x)}")
    for d in range(c.in_ndim):
        if c.drop[d] and a.shape[d] != 1:
            raise ValueError(f"DimShuffle: dim {d} of an array of shape {np.shape(x)} is "
                             f"dropped but does not have length 1")
    # A new dim gets the stride a C-contiguous layout would give it, as numpy's
    # reshape does: the stride of the dims after it times their length.
    for k in range(c.out_ndim - 1, -1, -1):
        d = c.order[k]
        if d < 0:
            dims[k], strides[k] = 1, step
        else:
            dims[k], strides[k] = a.shape[d], a.strides[d]
            step = a.strides[d] * a.shape[d]
    cnp.Py_INCREF(a.descr)          # NewFromDescr steals it
    cdef cnp.ndarray view = PyArray_NewFromDescr(
        np.ndarray, a.descr, c.out_ndim, dims, strides, cnp.PyArray_DATA(a),
        cnp.PyArray_FLAGS(a) & cnp.NPY_ARRAY_WRITEABLE, None)
    cnp.Py_INCREF(a)                # SetBaseObject steals it
    PyArray_SetBaseObject(view, a)
    cnp.PyArray_UpdateFlags(view, cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_F_CONTIGUOUS
                            | cnp.NPY_ARRAY_ALIGNED)
    return store(regs, outs[0], view)


def dimshuffle_thunk(int input_ndim, new_order):
    """The view ``DimShuffle(input_ndim, new_order)`` makes (registers: x):
    ``new_order`` lists input dims and ``'x'`` for new dims of length 1; input
    dims not listed are dropped (they must have length 1)."""
    if input_ndim > MAX_DIMS or len(new_order) > MAX_DIMS:
        raise ValueError(f"at most {MAX_DIMS} dims")
    thunk = cthunk(<void*>_dimshuffle_fn, 0, sizeof(Shuffle))
    cdef Shuffle *c = <Shuffle*>ctx_of(thunk)
    c.in_ndim, c.out_ndim = input_ndim, len(new_order)
    kept = [d for d in new_order if d != "x"]
    for d in range(input_ndim):
        c.drop[d] = d not in kept
    for k, d in enumerate(new_order):
        c.order[k] = -1 if d == "x" else int(d)
    return thunk


# ---------------------------------------------------------------- Shape_i

cdef int _shape_i_fn(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: x -> x.shape[i] as a 0-d int64 array; ctx flags: i
    cdef Ctx *c = <Ctx*>ctx
    x = reg(regs, ins[0])
    cdef cnp.ndarray a = _array(x)
    if a.ndim <= c.flags:
        raise ValueError(f"Shape_i{{{c.flags}}}: the array has shape {np.shape(x)}")
    cdef cnp.ndarray out = output(c, 0, 0, NULL, cnp.NPY_INT64)
    (<cnp.int64_t*>cnp.PyArray_DATA(out))[0] = a.shape[c.flags]
    return store(regs, outs[0], out)


def shape_i_thunk(int i):
    """``x.shape[i]`` as a 0-d int64 array (registers: x)."""
    return cthunk(<void*>_shape_i_fn, i)


# ------------------------------------------------------- equal dims (checks)

ctypedef struct EqualDims:
    Ctx base
    int n                       # number of equalities
    int n_args
    int terms[4 * MAX_TERMS]    # 4 per equality: arg a, dim of a, arg b, dim of b
    PyObject *explain           # a Python function of all the args that raises the error


cdef int _equal_dims_fn(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: every argument of the checked nodes -> nothing; raises on a mismatch
    cdef EqualDims *c = <EqualDims*>ctx
    cdef int q
    cdef const int *t
    cdef PyObject *pa
    cdef PyObject *pb
    for q in range(c.n):
        t = c.terms + 4 * q
        pa, pb = regs[ins[t[0]]], regs[ins[t[2]]]
        if (pa == NULL or pb == NULL or type(<object>pa) is not np.ndarray
                or type(<object>pb) is not np.ndarray
                or cnp.PyArray_NDIM(<cnp.ndarray>pa) <= t[1]
                or cnp.PyArray_NDIM(<cnp.ndarray>pb) <= t[3]
                or cnp.PyArray_DIM(<cnp.ndarray>pa, t[1])
                != cnp.PyArray_DIM(<cnp.ndarray>pb, t[3])):
            # Not equal, or not arrays: the Python check says what is wrong.
            (<object>c.explain)(*[reg(regs, ins[k]) for k in range(c.n_args)])
            return 0
    return 0


def equal_dims_thunk(terms, explain, int n_args):
    """Raise unless ``args[a].shape[i] == args[b].shape[j]`` for every
    ``(a, i, b, j)`` of ``terms`` (registers: the ``n_args`` arguments);
    ``explain(*args)`` raises the error when one does not hold (and decides
    when an argument is not an array). None for more than MAX_TERMS terms."""
    terms = [tuple(int(v) for v in t) for t in terms]
    if len(terms) > MAX_TERMS:
        return None
    for t in terms:
        if len(t) != 4 or not (0 <= t[0] < n_args and 0 <= t[2] < n_args):
            raise ValueError(f"bad term {t} for {n_args} arguments")
    thunk = cthunk(<void*>_equal_dims_fn, 0, sizeof(EqualDims), explain)
    cdef EqualDims *c = <EqualDims*>ctx_of(thunk)
    c.n, c.n_args, c.explain = len(terms), n_args, <PyObject*>explain
    for q, t in enumerate(terms):
        for r in range(4):
            c.terms[4 * q + r] = t[r]
    return thunk
