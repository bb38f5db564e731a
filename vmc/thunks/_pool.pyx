"""C thunks of 2-d pooling (``vmc/tensor/signal/pool.py``) for float32 and
float64: the pool (max, sum, the two averages), its gradients (max and
average) and the max gradient's own gradient.

They compute what the numpy thunks compute (``vmc/thunks/pool.py``, the
reference), one window at a time: window (r, c) covers rows
``[r * sh - ph, r * sh - ph + wh)`` and columns likewise, clipped to the input
(the padding is never read: a max never sees it, a sum adds zeros there); the
averages divide by the window's size within the padded input
('average_inc_pad') or within the input ('average_exc_pad'). The max
gradient recomputes which elements are their window's maximum by comparing
each with the pool's output (all equal ones get the gradient, as in Theano),
so the op needs no argmax output.

The leading dims are planes: an input of shape (..., h, w) is read as
(planes, h, w) through its strides (copied only when its leading dims do not
collapse into one stride, or it is misaligned or byte-swapped). Outputs are
new C-contiguous arrays, reused as ``vmc.thunks._outputs`` describes. The
GIL is released around the loops.
"""
cimport numpy as cnp
from cpython.ref cimport PyObject
from libc.math cimport INFINITY
from libc.string cimport memset

from vmc.thunks._outputs cimport Ctx, cthunk, ctx_of, output, reg, store

import numpy as np

cnp.import_array()

ctypedef fused real:
    float
    double

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* a when keep, else +0.0, through the bits: GCC turns a float select into
       a branch, and which element is its window's maximum is data (a
       mispredicted branch per element tripled a max pool's gradient) */
    static inline float vmc_keep_f32(int keep, float a)
    {
        uint32_t b;
        memcpy(&b, &a, 4);
        b &= -(uint32_t)(keep != 0);
        memcpy(&a, &b, 4);
        return a;
    }
    static inline double vmc_keep_f64(int keep, double a)
    {
        uint64_t b;
        memcpy(&b, &a, 8);
        b &= -(uint64_t)(keep != 0);
        memcpy(&a, &b, 8);
        return a;
    }
    /* which ? a : b, as bits too */
    static inline float vmc_pick_f32(int which, float a, float b)
    {
        uint32_t x, y, m = -(uint32_t)(which != 0);
        memcpy(&x, &a, 4);
        memcpy(&y, &b, 4);
        x = (x & m) | (y & ~m);
        memcpy(&a, &x, 4);
        return a;
    }
    static inline double vmc_pick_f64(int which, double a, double b)
    {
        uint64_t x, y, m = -(uint64_t)(which != 0);
        memcpy(&x, &a, 8);
        memcpy(&y, &b, 8);
        x = (x & m) | (y & ~m);
        memcpy(&a, &x, 8);
        return a;
    }
    """
    float vmc_keep_f32(int keep, float a) nogil
    double vmc_keep_f64(int keep, double a) nogil
    float vmc_pick_f32(int which, float a, float b) nogil
    double vmc_pick_f64(int which, double a, double b) nogil


cdef inline real _keep(bint keep, real a) noexcept nogil:
    if real is float:
        return vmc_keep_f32(keep, a)
    else:
        return vmc_keep_f64(keep, a)

cdef enum:
    POOL = 0
    MAX_GRAD = 1
    AVG_GRAD = 2
    MAX_GRAD_GRAD = 3
cdef enum:
    MODE_MAX = 0
    MODE_SUM = 1
    MODE_INC = 2            # average_inc_pad
    MODE_EXC = 3            # average_exc_pad
cdef enum:
    MAX_DIMS = 64


ctypedef struct PoolCtx:
    Ctx base
    int kind, mode, typenum
    bint ignore_border
    Py_ssize_t ws[2]
    Py_ssize_t st[2]
    Py_ssize_t pad[2]
    PyObject *op            # the op (messages, the numpy reference); the keepalive holds it


ctypedef struct Geo:
    Py_ssize_t m, h, w, oh, ow
    Py_ssize_t wh, ww, sh, sw, ph, pw
    int mode


ctypedef struct Planes:     # an (m, rows, cols) array through its strides, in elements
    char *data
    Py_ssize_t s0, s1, s2


cdef Py_ssize_t _out_len(Py_ssize_t n, Py_ssize_t ws, Py_ssize_t st, Py_ssize_t pad,
                         bint ignore_border) noexcept:
    # as vmc.tensor.signal.pool.pool_output_length
    if ignore_border:
        return (n + 2 * pad - ws) // st + 1
    if st >= ws:
        return (n - 1) // st + 1
    return max(0, (n - 1 - ws + st) // st) + 1


cdef inline void _span(Py_ssize_t o, Py_ssize_t s, Py_ssize_t p, Py_ssize_t ws,
                       Py_ssize_t n, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """The rows [lo, hi) of the input that window ``o`` covers."""
    lo[0] = max(o * s - p, 0)
    hi[0] = min(o * s - p + ws, n)


cdef inline Py_ssize_t _count(const Geo *g, Py_ssize_t r, Py_ssize_t c) noexcept nogil:
    """What window (r, c) averages over (as ``vmc.thunks.pool._counts``)."""
    cdef Py_ssize_t y0 = r * g.sh, y1 = min(y0 + g.wh, g.h + 2 * g.ph)
    cdef Py_ssize_t x0 = c * g.sw, x1 = min(x0 + g.ww, g.w + 2 * g.pw)
    if g.mode == MODE_EXC:
        y0, y1 = max(y0, g.ph), min(y1, g.h + g.ph)
        x0, x1 = max(x0, g.pw), min(x1, g.w + g.pw)
    return (y1 - y0) * (x1 - x0)


cdef inline real *_row(Planes a, Py_ssize_t m, Py_ssize_t y, real *kind) noexcept nogil:
    return <real*>a.data + m * a.s0 + y * a.s1


cdef inline real _nanmax(real a, real v) noexcept nogil:
    # a nan is the maximum, as np.maximum makes it; branch-free
    if real is float:
        return vmc_pick_f32((v > a) | (v != v), v, a)
    else:
        return vmc_pick_f64((v > a) | (v != v), v, a)


# ------------------------------------------------------------------- loops
#
# Each loop walks an output row r, then the input rows y of its windows, then
# the offsets j within a window's columns, and innermost the windows c whose
# column c * sw - pw + j is inside the input (``_cols``): a plain strided loop
# the compiler vectorizes where the stride allows (a 2x2 max pool of LeNet's
# 64x20x24x24: 0.3 ms against numpy's 0.5; window by window it was 3 ms).

cdef inline void _cols(const Geo *g, Py_ssize_t j, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """The windows c in [lo, hi) whose column c * sw - pw + j is in [0, w)."""
    cdef Py_ssize_t off = j - g.pw
    cdef Py_ssize_t a = 0 if off >= 0 else (-off + g.sw - 1) // g.sw
    cdef Py_ssize_t b = 0 if g.w - 1 - off < 0 else (g.w - 1 - off) // g.sw + 1
    a, b = min(a, g.ow), min(b, g.ow)
    lo[0], hi[0] = a, max(a, b)


cdef void _pool(Planes x, const Geo *g, real *out) noexcept nogil:
    cdef Py_ssize_t m, r, c, y, j, y0, y1, c0, c1, sx = x.s2 * g.sw
    cdef bint is_max = g.mode == MODE_MAX
    cdef real *o
    cdef const real *src
    for m in range(g.m):
        for r in range(g.oh):
            o = out + (m * g.oh + r) * g.ow
            _span(r, g.sh, g.ph, g.wh, g.h, &y0, &y1)
            for c in range(g.ow):
                o[c] = -INFINITY if is_max else 0
            for y in range(y0, y1):
                for j in range(g.ww):
                    _cols(g, j, &c0, &c1)
                    src = _row(x, m, y, o) + (j - g.pw) * x.s2
                    if is_max and sx == 1:
                        for c in range(c0, c1):
                            o[c] = _nanmax(o[c], src[c])
                    elif is_max:
                        for c in range(c0, c1):
                            o[c] = _nanmax(o[c], src[c * sx])
                    else:
                        for c in range(c0, c1):
                            o[c] = o[c] + src[c * sx]
            if g.mode == MODE_INC or g.mode == MODE_EXC:
                for c in range(g.ow):
                    o[c] = o[c] / <real>_count(g, r, c)


cdef void _max_grad(Planes x, Planes out, Planes gz, const Geo *g, real *gx) noexcept nogil:
    """Each window's gradient to every element equal to its maximum."""
    cdef Py_ssize_t m, r, c, y, j, y0, y1, c0, c1, sx = x.s2 * g.sw, sd = g.sw
    cdef const real *src
    cdef const real *o
    cdef const real *d
    cdef real *dst
    if g.sh >= g.wh and g.sw >= g.ww:
        _max_grad_tiled(x, out, gz, g, gx)
        return
    memset(gx, 0, g.m * g.h * g.w * sizeof(real))
    for m in range(g.m):
        for r in range(g.oh):
            _span(r, g.sh, g.ph, g.wh, g.h, &y0, &y1)
            o, d = _row(out, m, r, gx), _row(gz, m, r, gx)
            for y in range(y0, y1):
                for j in range(g.ww):
                    _cols(g, j, &c0, &c1)
                    src = _row(x, m, y, gx) + (j - g.pw) * x.s2
                    dst = gx + (m * g.h + y) * g.w + j - g.pw
                    for c in range(c0, c1):
                        dst[c * sd] += _keep(src[c * sx] == o[c * out.s2], d[c * gz.s2])


cdef void _max_grad_tiled(Planes x, Planes out, Planes gz, const Geo *g,
                          real *gx) noexcept nogil:
    """Windows that do not overlap (stride >= ws, the usual pool): each element
    is in at most one window, so its gradient is a select written once, not a
    compare-and-add into a zeroed array."""
    cdef Py_ssize_t m, r, c, y, j, xc, c0, c1, yy
    cdef const real *src
    cdef const real *o
    cdef const real *d
    cdef real *dst
    cdef bint gaps = g.sw > g.ww or g.ow * g.sw - g.pw < g.w or g.pw > 0
    for m in range(g.m):
        for y in range(g.h):
            dst = gx + (m * g.h + y) * g.w
            yy = y + g.ph
            r = yy // g.sh
            if r >= g.oh or yy - r * g.sh >= g.wh:
                memset(dst, 0, g.w * sizeof(real))     # a row no window covers
                continue
            if gaps:
                memset(dst, 0, g.w * sizeof(real))
            src, o, d = _row(x, m, y, gx), _row(out, m, r, gx), _row(gz, m, r, gx)
            for j in range(g.ww):
                _cols(g, j, &c0, &c1)
                for c in range(c0, c1):
                    xc = c * g.sw - g.pw + j
                    dst[xc] = _keep(src[xc * x.s2] == o[c * out.s2], d[c * gz.s2])


cdef void _avg_grad(Planes gz, const Geo *g, real *gx) noexcept nogil:
    cdef Py_ssize_t m, r, c, y, j, y0, y1, c0, c1, sd = g.sw
    cdef const real *d
    cdef real *dst
    cdef bint average = g.mode != MODE_SUM
    memset(gx, 0, g.m * g.h * g.w * sizeof(real))
    for m in range(g.m):
        for r in range(g.oh):
            _span(r, g.sh, g.ph, g.wh, g.h, &y0, &y1)
            d = _row(gz, m, r, gx)
            for y in range(y0, y1):
                for j in range(g.ww):
                    _cols(g, j, &c0, &c1)
                    dst = gx + (m * g.h + y) * g.w + j - g.pw
                    for c in range(c0, c1):
                        # gz / count first, rounded in the dtype, as numpy does
                        dst[c * sd] += d[c * gz.s2] / <real>_count(g, r, c) if average \
                            else d[c * gz.s2]


cdef void _max_grad_grad(Planes x, Planes out, Planes gg, const Geo *g,
                         real *res) noexcept nogil:
    """Each window's sum of ``gg`` over the elements equal to its maximum."""
    cdef Py_ssize_t m, r, c, y, j, y0, y1, c0, c1, sx = x.s2 * g.sw, sg = gg.s2 * g.sw
    cdef const real *src
    cdef const real *o
    cdef const real *gv
    cdef real *acc
    for m in range(g.m):
        for r in range(g.oh):
            _span(r, g.sh, g.ph, g.wh, g.h, &y0, &y1)
            o, acc = _row(out, m, r, res), res + (m * g.oh + r) * g.ow
            for c in range(g.ow):
                acc[c] = 0
            for y in range(y0, y1):
                for j in range(g.ww):
                    _cols(g, j, &c0, &c1)
                    src = _row(x, m, y, res) + (j - g.pw) * x.s2
                    gv = _row(gg, m, y, res) + (j - g.pw) * gg.s2
                    for c in range(c0, c1):
                        acc[c] += _keep(src[c * sx] == o[c * out.s2], gv[c * sg])


cdef void _run(real *dst, int kind, Planes a, Planes b, Planes c, const Geo *g) noexcept nogil:
    """``a``, ``b``, ``c``: x (pool); x, out, gz (max gradient); gz (average
    gradient); x, out, g (max gradient's gradient)."""
    if kind == POOL:
        _pool(a, g, dst)
    elif kind == MAX_GRAD:
        _max_grad(a, b, c, g, dst)
    elif kind == AVG_GRAD:
        _avg_grad(a, g, dst)
    else:
        _max_grad_grad(a, b, c, g, dst)


# ----------------------------------------------------------------- the thunks

cdef cnp.ndarray _floats(x, int typenum):
    return cnp.PyArray_FROMANY(x, typenum, 2, 0, cnp.NPY_ARRAY_ALIGNED
                               | cnp.NPY_ARRAY_NOTSWAPPED | cnp.NPY_ARRAY_FORCECAST)


cdef Planes _planes(cnp.ndarray a, Py_ssize_t m, list keep):
    """``a`` (..., rows, cols) as ``m`` planes: numpy's reshape, a view unless
    the leading dims do not collapse into one stride (then a copy, which
    ``keep`` holds while the loops read it)."""
    cdef Planes p
    cdef cnp.ndarray v = a.reshape((m, a.shape[a.ndim - 2], a.shape[a.ndim - 1]))
    keep.append(v)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(v)   # aligned: strides are multiples
    p.data = <char*>cnp.PyArray_DATA(v)
    p.s0, p.s1, p.s2 = v.strides[0] // item, v.strides[1] // item, v.strides[2] // item
    return p


cdef int _same(PoolCtx *c, str what, cnp.ndarray a, tuple want, tuple x_shape) except -1:
    if (<object>a).shape != want:
        raise ValueError(f"{<object>c.op}: {what} has shape {(<object>a).shape}, expected "
                         f"{want} for an input of shape {x_shape}")
    return 0


cdef object _call(PoolCtx *c, x_obj, b_obj, c_obj):
    cdef cnp.ndarray x = _floats(x_obj, c.typenum), b = None, gc = None, out
    cdef list keep = []
    cdef Geo g
    cdef int nd = x.ndim, d
    cdef cnp.npy_intp dims[MAX_DIMS]
    cdef tuple xs = (<object>x).shape
    g.h, g.w = x.shape[nd - 2], x.shape[nd - 1]
    g.wh, g.ww, g.sh, g.sw = c.ws[0], c.ws[1], c.st[0], c.st[1]
    g.ph, g.pw, g.mode = c.pad[0], c.pad[1], c.mode
    g.oh = _out_len(g.h, g.wh, g.sh, g.ph, c.ignore_border)
    g.ow = _out_len(g.w, g.ww, g.sw, g.pw, c.ignore_border)
    pooled = xs[:nd - 2] + (g.oh, g.ow)
    if c.kind == MAX_GRAD or c.kind == MAX_GRAD_GRAD:
        b, gc = _floats(b_obj, c.typenum), _floats(c_obj, c.typenum)
        _same(c, "the pool's output", b, pooled, xs)
        _same(c, "the output gradient" if c.kind == MAX_GRAD else "g", gc,
              pooled if c.kind == MAX_GRAD else xs, xs)
    elif c.kind == AVG_GRAD:
        b = _floats(b_obj, c.typenum)
        _same(c, "the output gradient", b, pooled, xs)
    g.m = 1
    for d in range(nd - 2):
        g.m *= x.shape[d]
        dims[d] = x.shape[d]
    if g.m == 0 or g.h <= 0 or g.w <= 0 or g.oh <= 0 or g.ow <= 0:
        return _reference(c, x, b, gc)
    if c.kind == POOL or c.kind == MAX_GRAD_GRAD:
        dims[nd - 2], dims[nd - 1] = g.oh, g.ow
    else:
        dims[nd - 2], dims[nd - 1] = g.h, g.w
    out = output(&c.base, 0, nd, dims, c.typenum)
    cdef Planes pa, pb, pc
    if c.kind == AVG_GRAD:
        pa = pb = pc = _planes(b, g.m, keep)
    else:
        pa = pb = pc = _planes(x, g.m, keep)
        if b is not None:
            pb, pc = _planes(b, g.m, keep), _planes(gc, g.m, keep)
    cdef void *o = cnp.PyArray_DATA(out)
    cdef int kind = c.kind
    with nogil:
        if c.typenum == cnp.NPY_FLOAT:
            _run(<float*>o, kind, pa, pb, pc, &g)
        else:
            _run(<double*>o, kind, pa, pb, pc, &g)
    return out


cdef object _reference(PoolCtx *c, x, b, gc):
    """Empty inputs or outputs: the numpy thunk's code."""
    from vmc.thunks import pool
    op = <object>c.op
    if c.kind == POOL:
        return pool.pool_forward(op, x)
    if c.kind == MAX_GRAD:
        return pool.max_pool_grad(op, x, b, gc)
    if c.kind == AVG_GRAD:
        return pool.average_pool_grad(op, x, b)
    return pool.max_pool_grad_grad(op, x, b, gc)


cdef int _pool_fn(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: x (pool); x, out, gz (max gradient); x, gz (average gradient);
    # x, out, g (max gradient's gradient)
    cdef PoolCtx *c = <PoolCtx*>ctx
    cdef int n_in = 1 if c.kind == POOL else 2 if c.kind == AVG_GRAD else 3
    return store(regs, outs[0], _call(c, reg(regs, ins[0]),
                                      reg(regs, ins[1]) if n_in > 1 else None,
                                      reg(regs, ins[2]) if n_in > 2 else None))


# ---------------------------------------------------------------- factories

_KINDS = {"pool": POOL, "max_grad": MAX_GRAD, "average_grad": AVG_GRAD,
          "max_grad_grad": MAX_GRAD_GRAD}
_MODES = {"max": MODE_MAX, "sum": MODE_SUM, "average_inc_pad": MODE_INC,
          "average_exc_pad": MODE_EXC}


def pool_thunk(op, str kind, dtype):
    """The C thunk of a pool op (its ``ws``, ``stride``, ``pad``,
    ``ignore_border`` and ``mode``): ``kind`` is 'pool' (registers: x),
    'max_grad' (x, out, gz), 'average_grad' (x, gz) or 'max_grad_grad'
    (x, out, g)."""
    cdef int typenum = np.dtype(dtype).num
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise TypeError(f"only float32 and float64, not {dtype}")
    thunk = cthunk(<void*>_pool_fn, 0, sizeof(PoolCtx), keepalive=op)
    cdef PoolCtx *c = <PoolCtx*>ctx_of(thunk)
    c.kind, c.mode, c.typenum = _KINDS[kind], _MODES[op.mode], typenum
    c.ignore_border = op.ignore_border
    c.ws[0], c.ws[1] = op.ws
    c.st[0], c.st[1] = op.stride
    c.pad[0], c.pad[1] = op.pad
    c.op = <PyObject*>op
    return thunk
