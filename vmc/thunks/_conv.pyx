"""C thunks of the 2-d convolutions (``AbstractConv2d`` and its two gradients,
``vmc/tensor/nnet/abstract_conv.py``) for float32 and float64: im2col and
col2im loops here, the products in BLAS (scipy's cython_blas), and direct
kernels (``conv_direct.h``) for the few-channel convolutions where they win.

They compute what the numpy thunks compute (``vmc/thunks/conv.py``, the
reference). Layout of one call, with K = C/G * kh * kw the rows of a group's
columns and P = oh * ow the output positions of an image:

- the batch goes in chunks of B images (``_chunk``); a chunk's columns are a
  (G * K, B * P) row-major matrix, one column per output position of each
  image, rows (channel, kernel row, kernel column), zeros for the padding;
- forward: ``out_g = W_g @ cols_g``, one gemm per group and chunk, written
  straight into the output when B is 1, else into a (F, B * P) buffer that is
  then laid out image by image;
- input gradient: ``cols_g = W_g^T @ top_g``, then col2im adds every column
  back into its image (the adjoint of im2col);
- filter gradient: ``gw_g += top_g @ cols_g^T`` over the chunks.

A true convolution (``filter_flip``) flips the filters: each (kh, kw) block
of the filters, read as kh * kw numbers, in reverse order. Inputs of any
strides are read in place (only a misaligned or byte-swapped one is copied).
Outputs are new C-contiguous arrays, reused from call to call as
``vmc.thunks._outputs`` describes; scratch (columns, chunk buffers) comes from
the elementwise driver's block cache, per call, so that concurrent calls of
one function never share it. The GIL is released around the loops and BLAS.
"""
cimport numpy as cnp
from cpython.ref cimport PyObject
from libc.limits cimport INT_MAX
from libc.string cimport memcpy, memset

from scipy.linalg.cython_blas cimport dgemm, sgemm
from vmc.thunks._outputs cimport Ctx, cthunk, ctx_of, new_array, output, reg, store

import numpy as np

cnp.import_array()

cdef extern from "conv_direct.h" nogil:
    enum: CD_SLACK
    int vmc_conv_direct_isa()
    void vmc_conv_direct_set_isa(int isa)
    void vmc_conv_direct_fwd_f32(const float *xp, Py_ssize_t hp, Py_ssize_t wp,
                                 const float *w, Py_ssize_t nf, Py_ssize_t cg,
                                 Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                                 Py_ssize_t dh, Py_ssize_t dw, float *out,
                                 Py_ssize_t oh, Py_ssize_t ow)
    void vmc_conv_direct_fwd_f64(const double *xp, Py_ssize_t hp, Py_ssize_t wp,
                                 const double *w, Py_ssize_t nf, Py_ssize_t cg,
                                 Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                                 Py_ssize_t dh, Py_ssize_t dw, double *out,
                                 Py_ssize_t oh, Py_ssize_t ow)
    void vmc_conv_direct_gw_f32(const float *xp, Py_ssize_t hp, Py_ssize_t wp,
                                const float *top, Py_ssize_t nf, Py_ssize_t cg,
                                Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                                Py_ssize_t dh, Py_ssize_t dw, float *gw,
                                Py_ssize_t oh, Py_ssize_t ow)
    void vmc_conv_direct_gw_f64(const double *xp, Py_ssize_t hp, Py_ssize_t wp,
                                const double *top, Py_ssize_t nf, Py_ssize_t cg,
                                Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                                Py_ssize_t dh, Py_ssize_t dw, double *gw,
                                Py_ssize_t oh, Py_ssize_t ow)

ctypedef fused real:
    float
    double

cdef enum:
    FORWARD = 0
    GRAD_INPUTS = 1
    GRAD_WEIGHTS = 2
cdef enum:
    BORDER_PADS = 0         # explicit padding (valid is (0, 0))
    BORDER_FULL = 1
    BORDER_HALF = 2
cdef enum:
    ALGO_AUTO = 0           # the rule of ``_use_direct``
    ALGO_GEMM = 1
    ALGO_DIRECT = 2

# Bytes of one chunk's columns that the chunk size aims at (see ``_chunk``).
# Measured by ``python -m bench.conv_choice`` on the gemm paths (input gradient
# everywhere, filter gradient with many channels; 14 shapes, float32, one
# thread, load 2-3): 128K-512K are alike (geometric mean 1.02-1.03 of each
# shape's best chunk, worst 1.08-1.15); 1M is worse (1.04-1.06, worst 1.31-1.37:
# LeNet's first layer's input gradient, whose columns and gathered output
# gradient then outgrow the 1 MB L2) and 2M more so (1.09); one image per
# gemm 1.03, worst 1.12.
CHUNK_BYTES = 256 << 10


ctypedef struct Geo:
    Py_ssize_t n, c, h, w       # the input
    Py_ssize_t f, kh, kw        # the filters: (f, c / g, kh, kw)
    Py_ssize_t sh, sw, dh, dw   # subsample and dilation
    Py_ssize_t ph, pw, oh, ow   # padding and output size
    Py_ssize_t g, cg, fg        # groups; channels and filters per group
    Py_ssize_t k, p             # rows of a group's columns (cg * kh * kw); oh * ow
    Py_ssize_t item             # bytes per element


ctypedef struct Arr4:           # a 4-d array read through its strides
    char *data
    Py_ssize_t s[4]             # in elements (an aligned array's are whole ones)


ctypedef struct ConvCtx:
    Ctx base
    int kind                    # FORWARD, GRAD_INPUTS, GRAD_WEIGHTS
    int typenum                 # NPY_FLOAT or NPY_DOUBLE
    int border                  # BORDER_*; pads[] hold explicit padding
    int algo                    # ALGO_*
    bint flip                   # a true convolution: the filters are flipped
    Py_ssize_t pads[2]
    Py_ssize_t sub[2]
    Py_ssize_t dil[2]
    Py_ssize_t groups
    Py_ssize_t chunk_bytes      # what a chunk's columns aim at (``_chunk``)
    PyObject *op                # the op (messages, the numpy reference); the keepalive holds it


# ------------------------------------------------------------------ geometry

cdef Py_ssize_t _pad(int border, Py_ssize_t explicit, Py_ssize_t k, Py_ssize_t d) noexcept:
    # as abstract_conv.border_pads
    if border == BORDER_FULL:
        return (k - 1) * d
    if border == BORDER_HALF:
        return ((k - 1) * d + 1) // 2
    return explicit


cdef int _geometry(ConvCtx *c, Geo *g, Py_ssize_t n, Py_ssize_t ch, Py_ssize_t h,
                   Py_ssize_t w, Py_ssize_t f, Py_ssize_t cg, Py_ssize_t kh,
                   Py_ssize_t kw) except -1:
    """Fill ``g`` for an input (n, ch, h, w) and filters (f, cg, kh, kw); the
    errors of ``vmc.thunks.conv._check``."""
    name = <object>c.op
    if ch != cg * c.groups or f % c.groups:
        raise ValueError(f"{name}: input of shape {(n, ch, h, w)} and filters of shape "
                         f"{(f, cg, kh, kw)} do not fit {c.groups} group(s) (the input's "
                         f"channels must be the filters' dim 1 times the groups, and the "
                         f"filters' dim 0 a multiple of the groups)")
    g.n, g.c, g.h, g.w, g.f, g.kh, g.kw = n, ch, h, w, f, kh, kw
    g.sh, g.sw, g.dh, g.dw = c.sub[0], c.sub[1], c.dil[0], c.dil[1]
    g.ph = _pad(c.border, c.pads[0], kh, g.dh)
    g.pw = _pad(c.border, c.pads[1], kw, g.dw)
    g.oh = (h + 2 * g.ph - (kh - 1) * g.dh - 1) // g.sh + 1 if kh > 0 else 0
    g.ow = (w + 2 * g.pw - (kw - 1) * g.dw - 1) // g.sw + 1 if kw > 0 else 0
    if g.oh < 1 or g.ow < 1 or h + 2 * g.ph < (kh - 1) * g.dh + 1 \
            or w + 2 * g.pw < (kw - 1) * g.dw + 1:
        raise ValueError(f"{name}: filters of shape {(f, cg, kh, kw)} (dilation "
                         f"{(g.dh, g.dw)}) do not fit the input of shape {(n, ch, h, w)} "
                         f"with padding {(g.ph, g.pw)}")
    g.g, g.cg, g.fg = c.groups, cg, f // c.groups
    g.k, g.p = cg * kh * kw, g.oh * g.ow
    g.item = 4 if c.typenum == cnp.NPY_FLOAT else 8
    return 0


cdef bint _blas_sizes(const Geo *g, Py_ssize_t chunk) noexcept:
    """Whether every gemm dimension and leading dimension fits a BLAS int."""
    return (g.k * g.g <= INT_MAX and chunk * g.p <= INT_MAX and g.f <= INT_MAX
            and g.n > 0 and g.f > 0 and g.k > 0)


cdef Py_ssize_t _chunk(const Geo *g, Py_ssize_t target) noexcept:
    """Images per chunk: as many as keep the chunk's columns near ``target``
    bytes (the columns are written, then read by the gemm while still in
    cache), at least one."""
    cdef Py_ssize_t per_image = g.g * g.k * g.p * g.item
    cdef Py_ssize_t b = target // per_image if per_image > 0 else 1
    return max(1, min(g.n, b))


cdef inline void _span(Py_ssize_t off, Py_ssize_t s, Py_ssize_t n, Py_ssize_t o,
                       Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """The outputs ``q`` in [lo, hi) of [0, o) whose input ``q * s + off`` is in [0, n)."""
    cdef Py_ssize_t a = 0 if off >= 0 else (-off + s - 1) // s
    cdef Py_ssize_t b = 0 if n - 1 - off < 0 else (n - 1 - off) // s + 1
    a, b = min(a, o), min(b, o)
    lo[0], hi[0] = a, max(a, b)


cdef inline Arr4 _arr4(cnp.ndarray a) noexcept:
    cdef Arr4 r
    r.data = <char*>cnp.PyArray_DATA(a)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a), d
    for d in range(4):
        r.s[d] = a.strides[d] // item
    return r


# ------------------------------------------------------------ im2col, col2im

cdef void _im2col(const real *x, const Py_ssize_t *s, const Geo *g, real *cols,
                  Py_ssize_t ld) noexcept nogil:
    """One image's columns (its strides ``s[1:]``) into ``cols``: row (c, i, j)
    at ``cols + row * ld``, column ``oy * ow + ox``; zeros for the padding.
    Plain loops, not memcpy/memset: rows are short (a call per row of 32
    cost a third of a small convolution)."""
    cdef Py_ssize_t c, i, j, oy, ox, iy, off, lo, hi, step = s[3] * g.sw
    cdef real *row
    cdef real *r
    cdef const real *src
    for c in range(g.c):
        for i in range(g.kh):
            for j in range(g.kw):
                row = cols + ((c * g.kh + i) * g.kw + j) * ld
                off = j * g.dw - g.pw
                _span(off, g.sw, g.w, g.ow, &lo, &hi)
                for oy in range(g.oh):
                    r = row + oy * g.ow
                    iy = oy * g.sh - g.ph + i * g.dh
                    if iy < 0 or iy >= g.h:
                        for ox in range(g.ow):
                            r[ox] = 0
                        continue
                    src = x + c * s[1] + iy * s[2] + off * s[3]
                    for ox in range(lo):
                        r[ox] = 0
                    if step == 1:
                        for ox in range(lo, hi):
                            r[ox] = src[ox]
                    else:
                        for ox in range(lo, hi):
                            r[ox] = src[ox * step]
                    for ox in range(hi, g.ow):
                        r[ox] = 0


cdef void _col2im(const real *cols, Py_ssize_t ld, const Geo *g, real *gx) noexcept nogil:
    """The adjoint of ``_im2col``: adds one image's columns into ``gx`` (C, h, w),
    C-contiguous."""
    cdef Py_ssize_t c, i, j, oy, ox, iy, off, lo, hi
    cdef const real *r
    cdef real *dst
    for c in range(g.c):
        for i in range(g.kh):
            for j in range(g.kw):
                off = j * g.dw - g.pw
                _span(off, g.sw, g.w, g.ow, &lo, &hi)
                for oy in range(g.oh):
                    iy = oy * g.sh - g.ph + i * g.dh
                    if iy < 0 or iy >= g.h:
                        continue
                    r = cols + ((c * g.kh + i) * g.kw + j) * ld + oy * g.ow
                    dst = gx + (c * g.h + iy) * g.w + off
                    if g.sw == 1:
                        for ox in range(lo, hi):
                            dst[ox] += r[ox]
                    else:
                        for ox in range(lo, hi):
                            dst[ox * g.sw] += r[ox]


# ------------------------------------------------------------------- helpers

cdef inline void _gemm(char ta, char tb, int m, int n, int k, const real *a, int lda,
                       const real *b, int ldb, real beta, real *c, int ldc) noexcept nogil:
    """Column-major ``c = op(a) @ op(b) + beta c``."""
    cdef real one = 1
    if real is float:
        sgemm(&ta, &tb, &m, &n, &k, &one, <float*>a, &lda, <float*>b, &ldb, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &m, &n, &k, &one, <double*>a, &lda, <double*>b, &ldb, &beta, c, &ldc)


cdef void _filters(Arr4 k, Py_ssize_t f, Py_ssize_t cg, Py_ssize_t kh, Py_ssize_t kw,
                   bint flip, real *out) noexcept nogil:
    """The filters, C-contiguous (f, cg, kh, kw), each (kh, kw) block reversed
    when ``flip``."""
    cdef Py_ssize_t a, b, i, j, q = 0, kk = kh * kw
    for a in range(f):
        for b in range(cg):
            for i in range(kh):
                for j in range(kw):
                    out[q + (kk - 1 - (i * kw + j) if flip else i * kw + j)] = \
                        (<const real*>k.data)[a * k.s[0] + b * k.s[1] + i * k.s[2] + j * k.s[3]]
            q += kk


cdef void _flip_blocks(real *a, Py_ssize_t blocks, Py_ssize_t kk) noexcept nogil:
    cdef Py_ssize_t b, i
    cdef real t
    cdef real *p
    for b in range(blocks):
        p = a + b * kk
        for i in range(kk // 2):
            t = p[i]
            p[i] = p[kk - 1 - i]
            p[kk - 1 - i] = t


cdef void _gather_top(Arr4 t, Py_ssize_t n0, Py_ssize_t nb, const Geo *g,
                      real *buf) noexcept nogil:
    """Images [n0, n0 + nb) of the output gradient as one (F, nb * P) matrix."""
    cdef Py_ssize_t b, f, y, x, ld = nb * g.p, sx = t.s[3]
    cdef const real *src
    cdef real *dst
    for b in range(nb):
        for f in range(g.f):
            for y in range(g.oh):
                dst = buf + f * ld + b * g.p + y * g.ow
                src = <const real*>t.data + (n0 + b) * t.s[0] + f * t.s[1] + y * t.s[2]
                if sx == 1:
                    for x in range(g.ow):
                        dst[x] = src[x]
                else:
                    for x in range(g.ow):
                        dst[x] = src[x * sx]


cdef const real *_top_chunk(Arr4 t, Py_ssize_t n0, Py_ssize_t nb, const Geo *g,
                            real *buf) noexcept nogil:
    """The chunk's output gradient as a (F, nb * P) matrix: in place when it is
    one C-contiguous image, else gathered into ``buf``."""
    if nb == 1 and t.s[3] == 1 and t.s[2] == g.ow and t.s[1] == g.p:
        return <const real*>t.data + n0 * t.s[0]
    _gather_top(t, n0, nb, g, buf)
    return buf


# ---------------------------------------------------------- im2col and gemm

cdef void _forward_gemm(Arr4 x, const real *wt, const Geo *g, Py_ssize_t chunk,
                        real *cols, real *ybuf, real *out) noexcept nogil:
    cdef Py_ssize_t ci, n0, nb, b, grp, f, ld, fp = g.f * g.p
    cdef real *dst
    cdef int ldc
    for ci in range((g.n + chunk - 1) // chunk):
        n0 = ci * chunk
        nb = min(chunk, g.n - n0)
        ld = nb * g.p
        for b in range(nb):
            _im2col(<const real*>x.data + (n0 + b) * x.s[0], x.s, g, cols + b * g.p, ld)
        for grp in range(g.g):
            # out_g (fg, ld) = W_g (fg, k) @ cols_g (k, ld); column-major, transposed
            dst = out + n0 * fp + grp * g.fg * g.p if nb == 1 else ybuf + grp * g.fg * ld
            ldc = <int>(g.p if nb == 1 else ld)
            _gemm(c'N', c'N', <int>ld, <int>g.fg, <int>g.k, cols + grp * g.k * ld, <int>ld,
                  wt + grp * g.fg * g.k, <int>g.k, 0, dst, ldc)
        if nb > 1:
            for b in range(nb):
                for f in range(g.f):
                    memcpy(out + (n0 + b) * fp + f * g.p, ybuf + f * ld + b * g.p,
                           g.p * sizeof(real))


cdef void _grad_inputs_gemm(Arr4 top, const real *wt, const Geo *g, Py_ssize_t chunk,
                            real *cols, real *tbuf, real *gx) noexcept nogil:
    cdef Py_ssize_t ci, n0, nb, b, grp, ld, ldt, img = g.c * g.h * g.w
    cdef const real *t
    memset(gx, 0, g.n * img * sizeof(real))
    for ci in range((g.n + chunk - 1) // chunk):
        n0 = ci * chunk
        nb = min(chunk, g.n - n0)
        ld = nb * g.p
        t = _top_chunk(top, n0, nb, g, tbuf)
        for grp in range(g.g):
            # cols_g (k, ld) = W_g^T (k, fg) @ top_g (fg, ld)
            _gemm(c'N', c'T', <int>ld, <int>g.k, <int>g.fg, t + grp * g.fg * ld, <int>ld,
                  wt + grp * g.fg * g.k, <int>g.k, 0, cols + grp * g.k * ld, <int>ld)
        for b in range(nb):
            _col2im(cols + b * g.p, ld, g, gx + (n0 + b) * img)


cdef void _grad_weights_gemm(Arr4 x, Arr4 top, const Geo *g, Py_ssize_t chunk,
                             real *cols, real *tbuf, real *gw) noexcept nogil:
    cdef Py_ssize_t ci, n0, nb, b, grp, ld
    cdef const real *t
    for ci in range((g.n + chunk - 1) // chunk):
        n0 = ci * chunk
        nb = min(chunk, g.n - n0)
        ld = nb * g.p
        for b in range(nb):
            _im2col(<const real*>x.data + (n0 + b) * x.s[0], x.s, g, cols + b * g.p, ld)
        t = _top_chunk(top, n0, nb, g, tbuf)
        for grp in range(g.g):
            # gw_g (fg, k) += top_g (fg, ld) @ cols_g^T (ld, k)
            _gemm(c'T', c'N', <int>g.k, <int>g.fg, <int>ld, cols + grp * g.k * ld, <int>ld,
                  t + grp * g.fg * ld, <int>ld, 0 if n0 == 0 else 1,
                  gw + grp * g.fg * g.k, <int>g.k)


# ------------------------------------------------------------ direct kernels

cdef void _pad_image(const real *x, const Py_ssize_t *s, const Geo *g, real *xp) noexcept nogil:
    """One image into the interior of ``xp`` (C, h + 2 ph, w + 2 pw), whose
    border the caller zeroed."""
    cdef Py_ssize_t c, y, i, hp = g.h + 2 * g.ph, wp = g.w + 2 * g.pw
    cdef const real *src
    cdef real *dst
    for c in range(g.c):
        for y in range(g.h):
            src = x + c * s[1] + y * s[2]
            dst = xp + (c * hp + y + g.ph) * wp + g.pw
            if s[3] == 1:
                for i in range(g.w):
                    dst[i] = src[i]
            else:
                for i in range(g.w):
                    dst[i] = src[i * s[3]]


cdef inline void _direct_fwd(const real *xp, Py_ssize_t hp, Py_ssize_t wp, const real *w,
                             const Geo *g, real *out) noexcept nogil:
    if real is float:
        vmc_conv_direct_fwd_f32(xp, hp, wp, w, g.fg, g.cg, g.kh, g.kw, g.sh, g.dh, g.dw,
                                out, g.oh, g.ow)
    else:
        vmc_conv_direct_fwd_f64(xp, hp, wp, w, g.fg, g.cg, g.kh, g.kw, g.sh, g.dh, g.dw,
                                out, g.oh, g.ow)


cdef inline void _direct_gw(const real *xp, Py_ssize_t hp, Py_ssize_t wp, const real *t,
                            const Geo *g, real *gw) noexcept nogil:
    if real is float:
        vmc_conv_direct_gw_f32(xp, hp, wp, t, g.fg, g.cg, g.kh, g.kw, g.sh, g.dh, g.dw,
                               gw, g.oh, g.ow)
    else:
        vmc_conv_direct_gw_f64(xp, hp, wp, t, g.fg, g.cg, g.kh, g.kw, g.sh, g.dh, g.dw,
                               gw, g.oh, g.ow)


cdef void _forward_direct(Arr4 x, const real *wt, const Geo *g, real *xp,
                          real *out) noexcept nogil:
    cdef Py_ssize_t n, grp, hp = g.h + 2 * g.ph, wp = g.w + 2 * g.pw, cp = g.cg * hp * wp
    memset(xp, 0, (g.c * hp * wp + CD_SLACK) * sizeof(real))
    for n in range(g.n):
        _pad_image(<const real*>x.data + n * x.s[0], x.s, g, xp)
        for grp in range(g.g):
            _direct_fwd(xp + grp * cp, hp, wp, wt + grp * g.fg * g.k, g,
                        out + (n * g.f + grp * g.fg) * g.p)


cdef void _grad_weights_direct(Arr4 x, Arr4 top, const Geo *g, real *xp, real *tbuf,
                               real *gw) noexcept nogil:
    cdef Py_ssize_t n, grp, hp = g.h + 2 * g.ph, wp = g.w + 2 * g.pw, cp = g.cg * hp * wp
    cdef const real *t
    memset(xp, 0, (g.c * hp * wp + CD_SLACK) * sizeof(real))
    memset(gw, 0, g.f * g.k * sizeof(real))
    for n in range(g.n):
        _pad_image(<const real*>x.data + n * x.s[0], x.s, g, xp)
        t = _top_chunk(top, n, 1, g, tbuf)
        for grp in range(g.g):
            _direct_gw(xp + grp * cp, hp, wp, t + grp * g.fg * g.p, g,
                       gw + grp * g.fg * g.k)


cdef int _threads = 1     # config.threads (``set_threads``)


cdef bint _use_direct(int kind, const Geo *g) noexcept:
    """Whether the direct kernels beat im2col + gemm for this call: the rule
    measured by ``python -m bench.conv_choice`` (one thread, thread CPU time,
    the median of 11-21 interleaved rounds, float32 unless said; the
    machine's 2 cores shared, load 2-3; direct against gemm's best chunk;
    AMD EPYC with AVX-512, 1 MB L2 per core, OpenBLAS 0.3.30 of scipy on its
    Haswell kernels). Times in ms, direct against gemm.

    - Only the AVX2+FMA variant: the baseline (SSE2) one lost everywhere, by
      1.1-2.9x (LeNet's second layer forward 5.3 against 3.6).
    - Only with one thread: the kernels run on the caller's thread, where
      BLAS takes ``config.threads``.
    - Only with unit column stride (the kernels vectorize along a row), and
      not the input gradient (no direct kernel: the first layer's input is
      data; gemm's input gradient is 1.4-3.5x faster than numpy's anyway).
    - Forward: wherever its inner dimension K = C/G * kh * kw >= 64, whatever
      the output's size, by 1.2-2.5x (LeNet's second layer, K 500: 3.4
      against 4.1; the bench's 32x32x64x64 * 64x3x3, K 288: 52.0 against
      60.1; 3 channels 7x7 3.8 against 9.3; 4 channels 5x5 2.1 against 3.8;
      8 and 16 channels 3x3 1.5x; float64 1.2-1.8x). Below 64 only while the
      output is at most 8 MB: LeNet's first layer (K 25, 2.9 MB) 0.62 against
      0.87, 3 channels 3x3 (K 27, 4.2 MB) 0.77 against 1.01, in float64 (5.9
      and 8.4 MB) 1.01 against 1.41 and 1.45 against 1.68; but one channel 5x5
      into 17 MB 4.7 against 3.8 (float64, 35 MB: 8.1 against 6.9): there the
      output's writes bound both, and the direct kernel's interleaved rows of
      4 filters fare worse.
    - Never when BLAS runs AVX-512 kernels (``set_blas_wide``): the rule above
      was measured with OpenBLAS pinned to its Haswell kernels
      (OPENBLAS_CORETYPE); on its own SkylakeX kernels, this machine's default,
      gemm with one image per call (no chunk's output to scatter) won every
      LeNet layer (thread CPU time, 7 rounds, load 1.0, ms): first layer forward
      0.34 against direct 0.60, filter gradient 0.39 against 0.68; second
      layer forward 2.36 against 3.14, filter gradient 2.32 against 5.33.
    - Filter gradient: float32 with at most 4 input channels per group and
      rows of 16 or more outputs, by 1.05-1.5x (LeNet's first layer 0.69
      against 1.02; 3 channels 7x7 5.7 against 7.8; 4 channels 5x5 2.3-2.7
      against 3.2-4.0); with 8 channels a tie (2.96-3.15 against 3.02-3.23),
      with 16 and up gemm won by 1.03-1.75x (LeNet's second layer 5.5-7.0
      against 3.5-4.0). In float64 direct won only LeNet's first layer
      (1.66 against 1.81) and tied or lost elsewhere (1.0-2.0x): gemm there.
    """
    if (g.sw != 1 or kind == GRAD_INPUTS or _threads != 1 or vmc_conv_direct_isa() != 2
            or _blas_wide):
        return False
    if kind == FORWARD:
        return g.k >= 64 or g.n * g.f * g.p * g.item <= (8 << 20)
    return g.item == 4 and g.cg <= 4 and g.ow >= 16


cdef bint _blas_wide = 0  # BLAS runs AVX-512 kernels (``set_blas_wide``)


def set_blas_wide(bint wide):
    """Whether the BLAS gemm runs AVX-512 kernels (vmc/thunks/conv.py asks
    threadpoolctl): gemm then beats the direct kernels, and the forward pass and
    filter gradient do best with one image per gemm (``_use_direct``)."""
    global _blas_wide
    _blas_wide = wide


def set_threads(int n):
    """``config.threads`` (vmc/thunks/conv.py keeps it followed): the direct
    kernels are chosen only for one thread."""
    global _threads
    _threads = n


cdef bint _direct(ConvCtx *c, const Geo *g) noexcept:
    if c.algo == ALGO_AUTO:
        return _use_direct(c.kind, g)
    return c.algo == ALGO_DIRECT and g.sw == 1 and c.kind != GRAD_INPUTS


# ------------------------------------------------------------ calls by dtype

cdef inline Py_ssize_t _round(Py_ssize_t n) noexcept:
    return (n + 15) & ~<Py_ssize_t>15       # sub-buffers start 64-byte aligned


ctypedef struct Plan:               # one call's choices and scratch sizes, in elements
    bint direct
    Py_ssize_t chunk
    Py_ssize_t nw, npad, ncols, ntop


cdef Plan _plan(ConvCtx *c, const Geo *g):
    cdef Plan p
    cdef Py_ssize_t hp = g.h + 2 * g.ph, wp = g.w + 2 * g.pw
    p.direct = _direct(c, g)
    p.chunk = 1 if p.direct else _chunk(g, c.chunk_bytes)
    p.nw = _round(g.f * g.k) if c.kind != GRAD_WEIGHTS else 0
    p.npad = _round(g.c * hp * wp + CD_SLACK) if p.direct else 0
    p.ncols = 0 if p.direct else _round(g.g * g.k * p.chunk * g.p)
    # forward: the chunk's outputs before they are laid out; gradients: the
    # chunk's output gradient gathered into one matrix
    p.ntop = _round(g.f * p.chunk * g.p) if c.kind != FORWARD or p.chunk > 1 else 0
    return p


cdef void _run(real *buf, int kind, bint flip, Plan p, Arr4 a, Arr4 b, const Geo *g,
               real *out) noexcept nogil:
    """``a``, ``b``: img and kern (forward), kern and top (input gradient), img
    and top (filter gradient)."""
    cdef real *wt = buf
    cdef real *xp = wt + p.nw
    cdef real *cols = xp + p.npad
    cdef real *tb = cols + p.ncols
    if kind == FORWARD:
        _filters(b, g.f, g.cg, g.kh, g.kw, flip, wt)
        if p.direct:
            _forward_direct(a, wt, g, xp, out)
        else:
            _forward_gemm(a, wt, g, p.chunk, cols, tb, out)
    elif kind == GRAD_INPUTS:
        _filters(a, g.f, g.cg, g.kh, g.kw, flip, wt)
        _grad_inputs_gemm(b, wt, g, p.chunk, cols, tb, out)
    else:
        if p.direct:
            _grad_weights_direct(a, b, g, xp, tb, out)
        else:
            _grad_weights_gemm(a, b, g, p.chunk, cols, tb, out)
        if flip:
            _flip_blocks(out, g.f * g.cg, g.kh * g.kw)


cdef cnp.ndarray _in4(x, int typenum):
    """``x`` as an aligned, native 4-d array of the op's dtype (converted as the
    numpy thunk's astype does; any strides)."""
    return cnp.PyArray_FROMANY(x, typenum, 4, 4, cnp.NPY_ARRAY_ALIGNED
                               | cnp.NPY_ARRAY_NOTSWAPPED | cnp.NPY_ARRAY_FORCECAST)


cdef int _spatial(ConvCtx *c, hw, Py_ssize_t *out) except -1:
    cdef cnp.ndarray a = cnp.PyArray_FROMANY(hw, cnp.NPY_INTP, 1, 1,
                                             cnp.NPY_ARRAY_ALIGNED | cnp.NPY_ARRAY_FORCECAST)
    if a.shape[0] != 2:
        raise ValueError(f"{<object>c.op}: the spatial shape must have 2 entries, got "
                         f"{np.asarray(hw).tolist()}")
    out[0] = (<Py_ssize_t*>cnp.PyArray_DATA(a))[0]
    out[1] = (<Py_ssize_t*>(<char*>cnp.PyArray_DATA(a) + a.strides[0]))[0]
    return 0


cdef int _check_top(ConvCtx *c, const Geo *g, cnp.ndarray top) except -1:
    if (top.shape[0] != g.n or top.shape[1] != g.f or top.shape[2] != g.oh
            or top.shape[3] != g.ow):
        raise ValueError(f"{<object>c.op}: the output gradient has shape "
                         f"{(<object>top).shape}, expected {(g.n, g.f, g.oh, g.ow)}")
    return 0


cdef object _call(ConvCtx *c, a_obj, b_obj, hw):
    """One call of any of the three ops (see ``_run`` for ``a`` and ``b``)."""
    cdef cnp.ndarray a = _in4(a_obj, c.typenum), b = _in4(b_obj, c.typenum), out, buf
    cdef Py_ssize_t sp[2]
    cdef cnp.npy_intp dims[4]
    cdef Geo g
    if c.kind == FORWARD:
        _geometry(c, &g, a.shape[0], a.shape[1], a.shape[2], a.shape[3],
                  b.shape[0], b.shape[1], b.shape[2], b.shape[3])
        dims[0], dims[1], dims[2], dims[3] = g.n, g.f, g.oh, g.ow
    elif c.kind == GRAD_INPUTS:
        _spatial(c, hw, sp)
        _geometry(c, &g, b.shape[0], a.shape[1] * c.groups, sp[0], sp[1],
                  a.shape[0], a.shape[1], a.shape[2], a.shape[3])
        _check_top(c, &g, b)
        dims[0], dims[1], dims[2], dims[3] = g.n, g.c, g.h, g.w
    else:
        _spatial(c, hw, sp)
        _geometry(c, &g, a.shape[0], a.shape[1], a.shape[2], a.shape[3],
                  b.shape[1], a.shape[1] // c.groups, sp[0], sp[1])
        _check_top(c, &g, b)
        dims[0], dims[1], dims[2], dims[3] = g.f, g.cg, g.kh, g.kw
    cdef Plan p = _plan(c, &g)
    if not _blas_sizes(&g, p.chunk):
        return _reference(c, a, b, hw)
    out = output(&c.base, 0, 4, dims, c.typenum)
    cdef cnp.npy_intp total = p.nw + p.npad + p.ncols + p.ntop
    buf = new_array(1, &total, c.typenum)
    cdef void *bp = cnp.PyArray_DATA(buf)
    cdef void *op = cnp.PyArray_DATA(out)
    cdef Arr4 aa = _arr4(a), bb = _arr4(b)
    cdef int kind = c.kind
    cdef bint flip = c.flip, f32 = c.typenum == cnp.NPY_FLOAT
    with nogil:
        if f32:
            _run(<float*>bp, kind, flip, p, aa, bb, &g, <float*>op)
        else:
            _run(<double*>bp, kind, flip, p, aa, bb, &g, <double*>op)
    return out


cdef object _reference(ConvCtx *c, a, b, hw):
    """Sizes BLAS cannot take (empty, or past its int): the numpy thunk's code."""
    from vmc.thunks import conv
    op = <object>c.op
    if c.kind == FORWARD:
        return conv.conv_forward(op, a, b)
    if c.kind == GRAD_INPUTS:
        return conv.conv_grad_inputs(op, a, b, hw)
    return conv.conv_grad_weights(op, a, b, hw)


cdef int _conv_fn(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    # regs: img, kern -> out (forward); kern, top, hw -> gx; img, top, hw -> gw
    cdef ConvCtx *c = <ConvCtx*>ctx
    hw = None if c.kind == FORWARD else reg(regs, ins[2])
    return store(regs, outs[0], _call(c, reg(regs, ins[0]), reg(regs, ins[1]), hw))


# ---------------------------------------------------------------- factories

_KINDS = {"forward": FORWARD, "grad_inputs": GRAD_INPUTS, "grad_weights": GRAD_WEIGHTS}
_ALGOS = {"auto": ALGO_AUTO, "gemm": ALGO_GEMM, "direct": ALGO_DIRECT}


def conv_thunk(op, str kind, dtype, str algo="auto", chunk_bytes=None):
    """The C thunk of a conv op (its ``border_mode``, ``subsample``,
    ``filter_flip``, ``filter_dilation`` and ``num_groups``): ``kind`` is
    'forward' (registers: img, kern), 'grad_inputs' (kern, top, hw) or
    'grad_weights' (img, top, hw); ``algo`` 'auto' (the rule of
    ``_use_direct``), 'gemm' or 'direct' (where it applies: unit column
    stride, not the input gradient; else gemm); ``chunk_bytes``: the size of
    a chunk's columns (default ``CHUNK_BYTES``; measurements try others)."""
    cdef int typenum = np.dtype(dtype).num
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise TypeError(f"only float32 and float64, not {dtype}")
    thunk = cthunk(<void*>_conv_fn, 0, sizeof(ConvCtx), keepalive=op)
    cdef ConvCtx *c = <ConvCtx*>ctx_of(thunk)
    c.kind, c.typenum, c.algo = _KINDS[kind], typenum, _ALGOS[algo]
    c.flip, c.groups = op.filter_flip, op.num_groups
    if chunk_bytes is None:
        # with AVX-512 BLAS: one image per gemm, whose output needs no scatter
        # (LeNet's first layer forward 0.34 ms against 0.62 in 256K chunks; the
        # input gradient of its second layer does best in chunks, 1.98 against
        # 2.16; see ``_use_direct``)
        one = _blas_wide and c.kind != GRAD_INPUTS
        chunk_bytes = 0 if one else CHUNK_BYTES
    c.chunk_bytes = chunk_bytes
    c.sub[0], c.sub[1] = op.subsample
    c.dil[0], c.dil[1] = op.filter_dilation
    mode = op.border_mode
    c.border = BORDER_FULL if mode == "full" else BORDER_HALF if mode == "half" \
        else BORDER_PADS
    c.pads[0], c.pads[1] = (0, 0) if isinstance(mode, str) else mode
    c.op = <PyObject*>op            # kept alive by the thunk's keepalive
    return thunk


def direct_isa():
    """The ISA the direct kernels run with here: 'avx2' or 'baseline'."""
    return "avx2" if vmc_conv_direct_isa() == 2 else "baseline"


def set_direct_isa(str isa):
    """Run the direct kernels' 'baseline' variant even on an AVX2 machine, or
    'best' (the CPU's): for tests and measurements of both variants."""
    if isa not in ("baseline", "best"):
        raise ValueError(f"set_direct_isa: 'baseline' or 'best', not {isa!r}")
    vmc_conv_direct_set_isa(0 if isa == "baseline" else -1)
