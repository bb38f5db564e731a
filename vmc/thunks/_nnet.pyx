"""C thunks for softmax, log-softmax and softmax cross-entropy over the last
axis of float32/float64 vectors and matrices.

They compute what the numpy thunks compute (``vmc/thunks/numpy_thunks.py``,
``vmc/thunks/nnet.py``), row by row in one pass each, without the dozen numpy
calls and temporaries per op (about 50 us for a 128x10 cross-entropy, against
a few here). Per row, with ``m`` the row's maximum (nan if the row has one):

- softmax ``e / sum(e)`` with ``e = exp(x - m)``;
- log-softmax ``(x - m) - log(sum(e))``;
- cross-entropy: ``nll = log(sum(e)) + m - x[y]``, the softmax, and the argmax
  (the first maximum, or the first nan, as ``np.argmax``);
- its gradient ``sm * g - onehot(y) * g``.

Sums are accumulated in double. Targets outside ``[0, k)`` are an error (numpy
indexing would wrap the negative ones silently). Inputs of any strides are
read in place; outputs are new C-contiguous arrays (see ``vmc.thunks._outputs``)
unless the thunk was built in place, when it writes into its dying input.
"""
cimport numpy as cnp
from cpython.ref cimport PyObject
from libc.math cimport log, logf

from vmc.thunks._outputs cimport Ctx, cthunk, output, reg, store

import numpy as np

cnp.import_array()

cdef extern from "cgen/vmc_math.h" nogil:
    # vmc's own exp (within 4 ulp; inlined, where libm's is a call per element)
    float vmc_expf(float x)
    double vmc_exp(double x)

ctypedef fused real:
    float
    double

# ctx flags: the dtype's typenum, and whether the thunk writes in place.
cdef enum:
    INPLACE = 1 << 16
    TYPENUM = INPLACE - 1
# Rows x classes above which the GIL is released.
cdef Py_ssize_t _NOGIL_SIZE = 1 << 16


ctypedef struct Rows:       # a 2-d array (a vector is one row)
    char *data
    Py_ssize_t n, k, s0, s1   # rows, columns, byte strides


cdef cnp.ndarray _floats(x, int typenum, str op, str name, bint vector_ok):
    """``x`` as an aligned native array of the op's dtype (a copy only when it
    is not one: the VM hands over arrays of the graph's types)."""
    cdef cnp.ndarray a = cnp.PyArray_FROMANY(x, typenum, 1, 2,
                                             cnp.NPY_ARRAY_ALIGNED | cnp.NPY_ARRAY_NOTSWAPPED)
    if a.ndim != 2 and not vector_ok:
        raise ValueError(f"{op}: {name} must be a matrix, got shape {np.shape(x)}")
    return a


cdef Rows _rows(cnp.ndarray a) noexcept:
    cdef Rows r
    r.data = <char*>cnp.PyArray_DATA(a)
    if a.ndim == 1:
        r.n, r.k, r.s0, r.s1 = 1, a.shape[0], 0, a.strides[0]
    else:
        r.n, r.k, r.s0, r.s1 = a.shape[0], a.shape[1], a.strides[0], a.strides[1]
    return r


cdef cnp.ndarray _targets(y, Py_ssize_t n, Py_ssize_t k, str op, tuple x_shape):
    """``y`` as an intp vector of ``n`` targets, each in ``[0, k)``."""
    cdef cnp.ndarray t = cnp.PyArray_FROMANY(y, cnp.NPY_INTP, 1, 1, cnp.NPY_ARRAY_ALIGNED)
    cdef Py_ssize_t i, v, s
    cdef char *p
    if t.shape[0] != n:
        raise ValueError(f"{op}: {n} rows of logits but {t.shape[0]} targets "
                         f"(shapes {x_shape} and {np.shape(y)})")
    p, s = <char*>cnp.PyArray_DATA(t), t.strides[0]
    for i in range(n):
        v = (<Py_ssize_t*>(p + i * s))[0]
        if v < 0 or v >= k:
            raise ValueError(f"{op}: target {v} of row {i} is outside [0, {k}) "
                             f"(logits of shape {x_shape})")
    return t


cdef inline real _exp(real x) noexcept nogil:
    if real is float:
        return vmc_expf(x)
    else:
        return vmc_exp(x)


cdef inline real _log(real x) noexcept nogil:
    if real is float:
        return logf(x)
    else:
        return log(x)


cdef inline real _at(const char *row, Py_ssize_t j, Py_ssize_t s1, real kind) noexcept nogil:
    return (<const real*>(row + j * s1))[0]


cdef Py_ssize_t _argmax(const char *row, Py_ssize_t k, Py_ssize_t s1, real *m) noexcept nogil:
    """The first maximum's index, or the first nan's (then ``m`` is nan).
    Branch-free over the row: which element is the running maximum is data,
    and a mispredicted branch per new maximum costs more than the loop."""
    cdef Py_ssize_t j, best = 0
    cdef real v, top = _at(row, 0, s1, <real>0)
    cdef bint nan = top != top
    for j in range(1, k):
        v = _at(row, j, s1, top)
        nan = nan | (v != v)
        best = j if v > top else best
        top = v if v > top else top
    if nan:
        for j in range(k):
            v = _at(row, j, s1, top)
            if v != v:
                m[0] = v
                return j
    m[0] = top
    return best


cdef void _shift_rows(Rows x, real *out, real *maxima, cnp.int64_t *argmax) noexcept nogil:
    """``out = x - max`` row by row (C-contiguous, may be ``x``), with each
    row's maximum and its index where ``maxima`` and ``argmax`` are not NULL."""
    cdef Py_ssize_t i, j, a
    cdef real m
    cdef const char *row
    cdef real *o
    for i in range(x.n):
        row, o = x.data + i * x.s0, out + i * x.k
        a = _argmax(row, x.k, x.s1, &m)
        if argmax != NULL:
            argmax[i] = a
        if maxima != NULL:
            maxima[i] = m
        for j in range(x.k):
            o[j] = _at(row, j, x.s1, m) - m


cdef void _exp_all(real *p, Py_ssize_t n) noexcept nogil:
    """``p = exp(p)`` over a contiguous block: one loop the compiler vectorizes
    (rows of a few classes are too short for that on their own)."""
    cdef Py_ssize_t j
    for j in range(n):
        p[j] = _exp(p[j])


cdef real _normalize(real *p, Py_ssize_t k) noexcept nogil:
    """Divide a contiguous row by its sum, which it returns."""
    cdef Py_ssize_t j
    cdef double total = 0
    for j in range(k):
        total += p[j]
    cdef real s = <real>total
    for j in range(k):
        p[j] = p[j] / s
    return s


cdef real _sum_exp(const real *t, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t j
    cdef double total = 0
    for j in range(k):
        total += _exp(t[j])
    return <real>total


cdef void _softmax(Rows x, real *out, bint log_form) noexcept nogil:
    """Softmax (or log-softmax) of each row into the C-contiguous ``out``,
    which may be ``x`` itself (each element is read before it is written)."""
    cdef Py_ssize_t i, j, k = x.k
    cdef real s
    cdef real *o
    _shift_rows(x, out, NULL, NULL)
    if log_form:
        for i in range(x.n):
            o = out + i * k
            s = _log(_sum_exp(o, k))
            for j in range(k):
                o[j] = o[j] - s
        return
    _exp_all(out, x.n * k)
    for i in range(x.n):
        _normalize(out + i * k, k)


cdef void _xent(Rows x, const char *y, Py_ssize_t ys, real *nll, real *sm,
                cnp.int64_t *am) noexcept nogil:
    cdef Py_ssize_t i, t, k = x.k
    cdef real s
    _shift_rows(x, sm, nll, am)         # nll holds each row's maximum for now
    _exp_all(sm, x.n * k)
    for i in range(x.n):
        s = _normalize(sm + i * k, k)
        t = (<const Py_ssize_t*>(y + i * ys))[0]
        nll[i] = _log(s) + nll[i] - _at(x.data + i * x.s0, t, x.s1, s)


cdef void _xent_dx(Rows sm, const real *g, Py_ssize_t gs, const char *y, Py_ssize_t ys,
                   Rows out) noexcept nogil:
    """``out = sm * g[:, None]``, less ``g`` at each row's target; ``out`` may be ``sm``."""
    cdef Py_ssize_t i, j, t
    cdef real gi
    cdef const char *row
    cdef char *o
    for i in range(sm.n):
        row, o, gi = sm.data + i * sm.s0, out.data + i * out.s0, g[i * gs]
        for j in range(sm.k):
            (<real*>(o + j * out.s1))[0] = _at(row, j, sm.s1, gi) * gi
        t = (<const Py_ssize_t*>(y + i * ys))[0]
        (<real*>(o + t * out.s1))[0] -= gi


# The loops for a dtype known only at run time.
cdef void _softmax_typed(int typenum, Rows r, void *o, bint log_form) noexcept nogil:
    if typenum == cnp.NPY_FLOAT:
        _softmax(r, <float*>o, log_form)
    else:
        _softmax(r, <double*>o, log_form)


cdef void _xent_typed(int typenum, Rows r, const char *y, Py_ssize_t ys, void *nll,
                      void *sm, cnp.int64_t *am) noexcept nogil:
    if typenum == cnp.NPY_FLOAT:
        _xent(r, y, ys, <float*>nll, <float*>sm, am)
    else:
        _xent(r, y, ys, <double*>nll, <double*>sm, am)


cdef void _xent_dx_typed(int typenum, Rows r, const void *g, Py_ssize_t gs, const char *y,
                         Py_ssize_t ys, Rows o) noexcept nogil:
    if typenum == cnp.NPY_FLOAT:
        _xent_dx(r, <const float*>g, gs, y, ys, o)
    else:
        _xent_dx(r, <const double*>g, gs, y, ys, o)


# ---------------------------------------------------------------- the thunks

cdef cnp.ndarray _dying(x, cnp.ndarray a, int flags):
    """``a`` when the thunk may write into its input and ``a`` is that input,
    C-contiguous and writable; else None."""
    if (flags & INPLACE and a is x and cnp.PyArray_IS_C_CONTIGUOUS(a)
            and cnp.PyArray_ISWRITEABLE(a)):
        return a
    return None


cdef int _softmax_thunk(void *ctx, PyObject **regs, const int *ins, const int *outs,
                        bint log_form) except -1:
    cdef Ctx *c = <Ctx*>ctx
    cdef int typenum = c.flags & TYPENUM
    x = reg(regs, ins[0])
    cdef cnp.ndarray a = _floats(x, typenum, "log_softmax" if log_form else "softmax",
                                 "x", True)
    cdef cnp.ndarray out = _dying(x, a, c.flags)
    cdef Rows r = _rows(a)
    if out is None:
        out = output(c, 0, a.ndim, a.shape, typenum)
    cdef void *o = cnp.PyArray_DATA(out)
    if r.k == 0:
        return store(regs, outs[0], out)
    if r.n * r.k <= _NOGIL_SIZE:
        _softmax_typed(typenum, r, o, log_form)
    else:
        with nogil:
            _softmax_typed(typenum, r, o, log_form)
    return store(regs, outs[0], out)


cdef int _softmax_fn(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: x -> softmax(x) over the last axis
    return _softmax_thunk(ctx, regs, ins, outs, False)


cdef int _log_softmax_fn(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: x -> log_softmax(x) over the last axis
    return _softmax_thunk(ctx, regs, ins, outs, True)


cdef int _xent_fn(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: x, y -> nll, softmax, argmax
    cdef Ctx *c = <Ctx*>ctx
    cdef int typenum = c.flags & TYPENUM
    cdef str op = "crossentropy_softmax"
    cdef cnp.ndarray a = _floats(reg(regs, ins[0]), typenum, op, "the logits", False)
    cdef Rows r = _rows(a)
    if r.k == 0:
        raise ValueError(f"{op}: logits of shape {(<object>a).shape} have no classes")
    cdef cnp.ndarray t = _targets(reg(regs, ins[1]), r.n, r.k, op, (<object>a).shape)
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = r.n, r.k
    cdef cnp.ndarray nll = output(c, 0, 1, dims, typenum)
    cdef cnp.ndarray sm = output(c, 1, 2, dims, typenum)
    cdef cnp.ndarray am = output(c, 2, 1, dims, cnp.NPY_INT64)
    cdef char *y = <char*>cnp.PyArray_DATA(t)
    cdef Py_ssize_t ys = t.strides[0]
    cdef void *pn = cnp.PyArray_DATA(nll)
    cdef void *ps = cnp.PyArray_DATA(sm)
    cdef cnp.int64_t *pa = <cnp.int64_t*>cnp.PyArray_DATA(am)
    if r.n * r.k <= _NOGIL_SIZE:
        _xent_typed(typenum, r, y, ys, pn, ps, pa)
    else:
        with nogil:
            _xent_typed(typenum, r, y, ys, pn, ps, pa)
    store(regs, outs[0], nll)
    store(regs, outs[1], sm)
    return store(regs, outs[2], am)


cdef int _xent_dx_fn(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: g, sm, y -> d nll / d x
    cdef Ctx *c = <Ctx*>ctx
    cdef int typenum = c.flags & TYPENUM
    cdef str op = "crossentropy_softmax_dx"
    sm_obj = reg(regs, ins[1])
    cdef cnp.ndarray sm = _floats(sm_obj, typenum, op, "the softmax", False)
    cdef cnp.ndarray g = cnp.PyArray_FROMANY(reg(regs, ins[0]), typenum, 1, 1,
                                             cnp.NPY_ARRAY_ALIGNED | cnp.NPY_ARRAY_NOTSWAPPED)
    cdef Rows r = _rows(sm)
    if g.shape[0] != r.n and g.shape[0] != 1:
        raise ValueError(f"{op}: shapes {(<object>g).shape}, {(<object>sm).shape}, "
                         f"{np.shape(reg(regs, ins[2]))} do not match")
    cdef cnp.ndarray t = _targets(reg(regs, ins[2]), r.n, r.k, op, (<object>sm).shape)
    cdef cnp.ndarray out = _dying(sm_obj, sm, c.flags)
    if out is None:
        out = output(c, 0, 2, sm.shape, typenum)
    cdef Rows o = _rows(out)
    cdef Py_ssize_t gs = 0 if g.shape[0] == 1 else g.strides[0] // cnp.PyArray_ITEMSIZE(g)
    cdef char *y = <char*>cnp.PyArray_DATA(t)
    cdef Py_ssize_t ys = t.strides[0]
    cdef void *pg = cnp.PyArray_DATA(g)
    if r.n * r.k <= _NOGIL_SIZE:
        _xent_dx_typed(typenum, r, pg, gs, y, ys, o)
    else:
        with nogil:
            _xent_dx_typed(typenum, r, pg, gs, y, ys, o)
    return store(regs, outs[0], out)


# ---------------------------------------------------------------- factories

cdef int _flags(dtype, bint inplace) except -1:
    cdef int typenum = np.dtype(dtype).num
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise TypeError(f"only float32 and float64, not {dtype}")
    return typenum | (INPLACE if inplace else 0)


def softmax_thunk(dtype, bint inplace=False):
    """Softmax over the last axis of a vector or matrix (registers: x)."""
    return cthunk(<void*>_softmax_fn, _flags(dtype, inplace))


def log_softmax_thunk(dtype, bint inplace=False):
    """Log-softmax over the last axis of a vector or matrix (registers: x)."""
    return cthunk(<void*>_log_softmax_fn, _flags(dtype, inplace))


def crossentropy_softmax_thunk(dtype):
    """``(nll, softmax, argmax)`` of logits against integer targets (registers: x, y)."""
    return cthunk(<void*>_xent_fn, _flags(dtype, False))


def crossentropy_softmax_dx_thunk(dtype, bint inplace=False):
    """The cross-entropy's gradient (registers: g, sm, y), into sm when ``inplace``."""
    return cthunk(<void*>_xent_dx_fn, _flags(dtype, inplace))
