"""2-d convolutions and pooling on the device, as C thunks (both drivers).

``ConvThunk`` runs AbstractConv2d and its two gradients as im2col + GEMM
(``kernels/conv.h``; the GEMM is ``_gblas.MatmulThunk.product``: cuBLAS on
CUDA, the dialect's tiled GEMM on OpenCL), a chunk of images at a time so that
the columns stay under ``col_bytes``:

- forward: ``COL = im2col(images)``; per group ``OUT_g (F/G, Nb*P) = W_g @ COL_g``;
  the (F, Nb, P) result reordered into the (N, F, oh, ow) output;
- filter gradient: ``COL = im2col(images)``, the output gradient reordered to
  (F, Nb, P); per group ``GW_g += TOP_g @ COL_g^T`` (accumulated over chunks);
- input gradient: per group ``COL_g = W_g^T @ TOP_g``, then ``col2im`` sums the
  columns back into the input's shape (a gather: no atomics).

A true convolution (``filter_flip``) flips the kernel offsets inside im2col and
col2im, so the filters and their gradient are used and made as stored.

``PoolThunk`` runs Pool, MaxPoolGrad, AveragePoolGrad and
DownsampleFactorMaxGradGrad with the kernels of ``kernels/pool.h``, over the
last two dims of an input of any rank (the leading dims collapsed to one,
copied first when their strides do not allow it).

The shapes are checked as the CPU thunks check them (``vmc/thunks/conv.py``,
``vmc/thunks/pool.py``), with the same messages.
"""
cimport numpy as cnp
from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t

from vmc.gpu._gblas cimport MatmulThunk, Operand, set_operand
from vmc.gpu._gpu cimport (Device, GpuArray, Kernel, empty, push_array, push_i64, view,
                           vmc_args, vmc_push)
from vmc.gpu._gthunks cimport GThunk, reg, store

import numpy as np

cnp.import_array()

cdef enum:
    FORWARD = 0
    GRAD_INPUTS = 1
    GRAD_WEIGHTS = 2
    # border modes; an explicit padding is PADS
    PADS = 0
    VALID = 1
    FULL = 2
    HALF = 3
    # pool thunks
    POOL = 0
    POOL_GRAD = 1
    POOL_GRADGRAD = 2

cdef size_t MAX_GROUPS = 1 << 30

BORDERS = {"valid": VALID, "full": FULL, "half": HALF}
CONV_KINDS = {"forward": FORWARD, "grad_inputs": GRAD_INPUTS, "grad_weights": GRAD_WEIGHTS}
POOL_KINDS = {"pool": POOL, "grad": POOL_GRAD, "gradgrad": POOL_GRADGRAD}
POOL_MODES = {"max": 0, "sum": 1, "average_inc_pad": 2, "average_exc_pad": 3}


ctypedef struct Geo:        # one call's geometry (as vmc/thunks/conv.py's _Geometry)
    cnp.npy_intp n, c, h, w, f, kh, kw, ph, pw, oh, ow, sy, sx, dy, dx


cdef size_t _groups(cnp.npy_intp n, size_t local) noexcept:
    """A work-item per element (PoCL vectorizes across a group's work-items only then)."""
    cdef size_t g = (n + local - 1) // local
    return g if g < MAX_GROUPS else MAX_GROUPS


cdef GpuArray _arg(GThunk t, PyObject **regs, int r, int typenum, int nd, str what):
    v = reg(regs, r)
    if type(v) is not GpuArray or (<GpuArray>v).typenum != typenum or \
            ((<GpuArray>v).nd != nd if nd >= 0 else (<GpuArray>v).nd < 2):
        want = f"{nd}-d" if nd >= 0 else "at least 2-d"
        raise TypeError(f"{t.label}: {what} must be a {want} GpuArray of "
                        f"{np.dtype(cnp.PyArray_DescrFromType(typenum))}, got {v!r}")
    return <GpuArray>v


cdef class ConvThunk(GThunk):
    """One of AbstractConv2d, _gradInputs, _gradWeights for one dtype."""
    cdef Device dev
    cdef int kind, typenum, itemsize, flip, groups, border
    cdef cnp.npy_intp pads[2]
    cdef cnp.npy_intp sub[2]
    cdef cnp.npy_intp dil[2]
    cdef Kernel k_im2col, k_col2im, k_reorder
    cdef MatmulThunk mm
    cdef size_t col_bytes

    def __init__(self, Device dev, str kind, dtype, border_mode, subsample, filter_dilation,
                 bint filter_flip, int num_groups, dict kernels, MatmulThunk mm,
                 size_t col_bytes, str label):
        self.dev, self.kind, self.label, self.mm = dev, CONV_KINDS[kind], label, mm
        self.typenum, self.itemsize = np.dtype(dtype).num, np.dtype(dtype).itemsize
        self.flip, self.groups = filter_flip, num_groups
        self.col_bytes = col_bytes if col_bytes > 0 else 1
        if isinstance(border_mode, str):
            self.border, self.pads[0], self.pads[1] = BORDERS[border_mode], 0, 0
        else:
            self.border, self.pads[0], self.pads[1] = PADS, border_mode[0], border_mode[1]
        self.sub[0], self.sub[1] = subsample
        self.dil[0], self.dil[1] = filter_dilation
        sfx = {4: "f32", 8: "f64"}[self.itemsize]
        self.k_im2col = kernels[f"vmc_im2col_{sfx}"]
        self.k_col2im = kernels[f"vmc_col2im_{sfx}"]
        self.k_reorder = kernels[f"vmc_conv_reorder_{sfx}"]

    # -- geometry and checks (as the CPU's _check) ----------------------------------
    cdef cnp.npy_intp _pad(self, int d, cnp.npy_intp k) noexcept:
        cdef cnp.npy_intp dk = (k - 1) * self.dil[d] + 1
        if self.border == VALID:
            return 0
        if self.border == FULL:
            return dk - 1
        if self.border == HALF:
            return dk // 2
        return self.pads[d]

    cdef int _geometry(self, Geo *g, tuple img, tuple kern) except -1:
        if img[1] != kern[1] * self.groups or kern[0] % self.groups:
            raise ValueError(f"{self.label}: input of shape {img} and filters of shape "
                             f"{kern} do not fit {self.groups} group(s) (the input's "
                             f"channels must be the filters' dim 1 times the groups, and "
                             f"the filters' dim 0 a multiple of the groups)")
        g.n, g.c, g.h, g.w = img
        g.f, g.kh, g.kw = kern[0], kern[2], kern[3]
        g.sy, g.sx, g.dy, g.dx = self.sub[0], self.sub[1], self.dil[0], self.dil[1]
        g.ph, g.pw = self._pad(0, g.kh), self._pad(1, g.kw)
        g.oh = _floordiv(g.h + 2 * g.ph - (g.kh - 1) * g.dy - 1, g.sy) + 1
        g.ow = _floordiv(g.w + 2 * g.pw - (g.kw - 1) * g.dx - 1, g.sx) + 1
        if g.oh < 1 or g.ow < 1:
            raise ValueError(f"{self.label}: filters of shape {kern} (dilation "
                             f"{(g.dy, g.dx)}) do not fit the input of shape {img} with "
                             f"padding {(g.ph, g.pw)}")
        return 0

    cdef int _check_top(self, Geo *g, GpuArray top) except -1:
        if top.shape != (g.n, g.f, g.oh, g.ow):
            raise ValueError(f"{self.label}: the output gradient has shape {top.shape}, "
                             f"expected {(g.n, g.f, g.oh, g.ow)}")
        return 0

    cdef cnp.npy_intp _chunk(self, Geo *g) noexcept:
        """Images per chunk: the columns and the reordered (F, Nb, P) block of a
        chunk fit in col_bytes (one image at least)."""
        cdef cnp.npy_intp per = (g.c * g.kh * g.kw + g.f) * g.oh * g.ow * self.itemsize
        cdef cnp.npy_intp nb = <cnp.npy_intp>self.col_bytes // max(per, 1)
        return max(1, min(nb, g.n))

    # -- the thunk ----------------------------------------------------------------------
    cdef int run(self, PyObject **regs, const int *ins, const int *outs) except -1:
        cdef Geo g
        cdef GpuArray a, b, out
        cdef cnp.npy_intp n0, nb
        a = _arg(self, regs, ins[0], self.typenum, 4, "the filters" if self.kind ==
                 GRAD_INPUTS else "the input")
        b = _arg(self, regs, ins[1], self.typenum, 4, "the filters" if self.kind == FORWARD
                 else "the output gradient")
        if self.kind == FORWARD:
            self._geometry(&g, a.shape, b.shape)
        else:
            hw = np.asarray(reg(regs, ins[2]))
            if hw.shape != (2,):
                raise ValueError(f"{self.label}: the spatial shape must hold 2 ints, got "
                                 f"{hw!r}")
            h, w = int(hw[0]), int(hw[1])
            if self.kind == GRAD_INPUTS:
                self._geometry(&g, (b.dims[0], a.dims[1] * self.groups, h, w), a.shape)
            else:
                self._geometry(&g, a.shape, (b.dims[1], a.dims[1] // self.groups, h, w))
            self._check_top(&g, b)
        out = self._new_output(&g)
        if out.size > 0:
            nb = self._chunk(&g)
            for n0 in range(0, g.n, nb):
                if self.kind == FORWARD:
                    self._forward(&g, a, _filters(b), out, n0, min(nb, g.n - n0))
                elif self.kind == GRAD_INPUTS:
                    self._grad_inputs(&g, _filters(a), b, out, n0, min(nb, g.n - n0))
                else:
                    self._grad_weights(&g, a, b, out, n0, min(nb, g.n - n0))
            if g.n == 0 or g.c == 0:      # no terms: the sums are 0
                self.dev.zero(out.mem.handle, out.offset, out.size * out.itemsize)
        store(regs, outs[0], out)
        return 0

    cdef GpuArray _new_output(self, Geo *g):
        cdef cnp.npy_intp d[4]
        if self.kind == FORWARD:
            d[0], d[1], d[2], d[3] = g.n, g.f, g.oh, g.ow
        elif self.kind == GRAD_INPUTS:
            d[0], d[1], d[2], d[3] = g.n, g.c, g.h, g.w
        else:
            d[0], d[1], d[2], d[3] = g.f, g.c // self.groups, g.kh, g.kw
        return empty(self.dev, 4, d, self.typenum)

    cdef int _forward(self, Geo *g, GpuArray img, GpuArray kern, GpuArray out,
                      cnp.npy_intp n0, cnp.npy_intp nb) except -1:
        cdef cnp.npy_intp cols = nb * g.oh * g.ow
        cdef GpuArray col = self._im2col(g, img, n0, nb)
        cdef GpuArray fnp = _matrix(self.dev, g.f, cols, self.typenum)
        cdef Operand A, B
        cdef cnp.npy_intp fg = g.f // self.groups, k = (g.c // self.groups) * g.kh * g.kw
        cdef int q
        for q in range(self.groups):
            _sub(&A, kern, q * fg * k, fg, k, k, 1)
            _sub(&B, col, q * k * cols, k, cols, cols, 1)
            self.mm.product(&A, &B, 1.0, 0.0, _block(fnp, q * fg, fg, cols), fg, cols)
        self._reorder(g, fnp, out, n0, nb, 0)
        return 0

    cdef int _grad_weights(self, Geo *g, GpuArray img, GpuArray top, GpuArray gw,
                           cnp.npy_intp n0, cnp.npy_intp nb) except -1:
        cdef cnp.npy_intp cols = nb * g.oh * g.ow
        cdef GpuArray col = self._im2col(g, img, n0, nb)
        cdef GpuArray fnp = _matrix(self.dev, g.f, cols, self.typenum)
        cdef Operand A, B
        cdef cnp.npy_intp fg = g.f // self.groups, k = (g.c // self.groups) * g.kh * g.kw
        cdef int q
        self._reorder(g, fnp, top, n0, nb, 1)
        for q in range(self.groups):
            _sub(&A, fnp, q * fg * cols, fg, cols, cols, 1)
            _sub(&B, col, q * k * cols, cols, k, 1, cols)       # COL_g^T
            self.mm.product(&A, &B, 1.0, 0.0 if n0 == 0 else 1.0, _block(gw, q * fg, fg, k),
                            fg, k)
        return 0

    cdef int _grad_inputs(self, Geo *g, GpuArray kern, GpuArray top, GpuArray gi,
                          cnp.npy_intp n0, cnp.npy_intp nb) except -1:
        cdef cnp.npy_intp cols = nb * g.oh * g.ow
        cdef GpuArray fnp = _matrix(self.dev, g.f, cols, self.typenum)
        cdef GpuArray col = _matrix(self.dev, g.c * g.kh * g.kw, cols, self.typenum)
        cdef Operand A, B
        cdef cnp.npy_intp fg = g.f // self.groups, k = (g.c // self.groups) * g.kh * g.kw
        cdef vmc_args a
        cdef int q
        self._reorder(g, fnp, top, n0, nb, 1)
        for q in range(self.groups):
            _sub(&A, kern, q * fg * k, k, fg, 1, k)             # W_g^T
            _sub(&B, fnp, q * fg * cols, fg, cols, cols, 1)
            self.mm.product(&A, &B, 1.0, 0.0, _block(col, q * k, k, cols), k, cols)
        a.n = 0
        a.used = 0
        push_array(&a, col)
        _push_at(&a, gi, n0 * g.c * g.h * g.w)
        _push_geo(&a, g, nb, self.flip)
        self.dev.launch(self.k_col2im, _groups(nb * g.c * g.h * g.w, self.k_col2im.local),
                        self.k_col2im.local, &a)
        return 0

    cdef GpuArray _im2col(self, Geo *g, GpuArray x, cnp.npy_intp n0, cnp.npy_intp nb):
        """The (C * kh * kw, nb * oh * ow) columns of images n0 .. n0 + nb of x."""
        cdef GpuArray col = _matrix(self.dev, g.c * g.kh * g.kw, nb * g.oh * g.ow,
                                    self.typenum)
        cdef vmc_args a
        cdef int d
        a.n = 0
        a.used = 0
        _push_at(&a, x, n0 * (x.strd[0] // self.itemsize))
        for d in range(4):
            push_i64(&a, x.strd[d] // self.itemsize)
        push_array(&a, col)
        _push_geo(&a, g, nb, self.flip)
        self.dev.launch(self.k_im2col, _groups(col.size, self.k_im2col.local),
                        self.k_im2col.local, &a)
        return col

    cdef int _reorder(self, Geo *g, GpuArray fnp, GpuArray t4, cnp.npy_intp n0,
                      cnp.npy_intp nb, bint to_fnp) except -1:
        """fnp (F, nb, P) <-> images n0 .. n0 + nb of t4 (N, F, oh, ow)."""
        cdef vmc_args a
        cdef int d
        a.n = 0
        a.used = 0
        for v in (nb, g.f, g.oh, g.ow):
            push_i64(&a, v)
        push_array(&a, fnp)
        _push_at(&a, t4, n0 * (t4.strd[0] // self.itemsize))
        for d in range(4):
            push_i64(&a, t4.strd[d] // self.itemsize)
        push_i64(&a, to_fnp)
        self.dev.launch(self.k_reorder, _groups(fnp.size, self.k_reorder.local),
                        self.k_reorder.local, &a)
        return 0



# -- pooling ----------------------------------------------------------------------------
cdef class PoolThunk(GThunk):
    """One of Pool, MaxPoolGrad, AveragePoolGrad, DownsampleFactorMaxGradGrad."""
    cdef Device dev
    cdef int kind, mode, typenum, itemsize, nd
    cdef bint ignore_border
    cdef cnp.npy_intp ws[2]
    cdef cnp.npy_intp st[2]
    cdef cnp.npy_intp pad[2]
    cdef Kernel k

    def __init__(self, Device dev, str kind, dtype, int nd, ws, stride, pad,
                 bint ignore_border, str mode, Kernel kernel, str label):
        self.dev, self.kind, self.mode, self.label = dev, POOL_KINDS[kind], POOL_MODES[mode], label
        self.typenum, self.itemsize = np.dtype(dtype).num, np.dtype(dtype).itemsize
        self.nd, self.ignore_border, self.k = nd, ignore_border, kernel
        self.ws[0], self.ws[1] = ws
        self.st[0], self.st[1] = stride
        self.pad[0], self.pad[1] = pad

    cdef cnp.npy_intp _out_len(self, int d, cnp.npy_intp n) noexcept:
        """vmc.tensor.signal.pool.pool_output_length."""
        cdef cnp.npy_intp ws = self.ws[d], s = self.st[d], p = self.pad[d]
        if self.ignore_border:
            return _floordiv(n + 2 * p - ws, s) + 1
        if s >= ws:
            return _floordiv(n - 1, s) + 1
        return max(0, _floordiv(n - 1 - ws + s, s)) + 1

    cdef int run(self, PyObject **regs, const int *ins, const int *outs) except -1:
        cdef GpuArray x = _arg(self, regs, ins[0], self.typenum, self.nd, "the input")
        cdef GpuArray o = None, gz = None, res
        cdef list keep = []
        cdef cnp.npy_intp oh = self._out_len(0, x.dims[x.nd - 2])
        cdef cnp.npy_intp ow = self._out_len(1, x.dims[x.nd - 1])
        cdef vmc_args a
        if oh < 0 or ow < 0:
            raise ValueError(f"{self.label}: windows {tuple(self.ws)} with padding "
                             f"{tuple(self.pad)} do not fit an input of shape {x.shape}")
        pooled = x.shape[:x.nd - 2] + (oh, ow)
        if self.kind == POOL:
            res = _like(x, pooled)
        else:
            # MaxPoolGrad (x, out, gz), AveragePoolGrad (x, gz), the grad-grad (x, out, g)
            gz = _arg(self, regs, ins[1 if self.kind == POOL_GRAD and self.mode != 0 else 2],
                      self.typenum, self.nd, "the gradient")
            o = x
            if self.mode == 0:
                o = _arg(self, regs, ins[1], self.typenum, self.nd, "the pooled input")
                _expect(self, x, "the pooled input", o.shape, pooled)
            if self.kind == POOL_GRADGRAD:
                _expect(self, x, "g", gz.shape, x.shape)
            else:
                _expect(self, x, "the output gradient", gz.shape, pooled)
            res = _like(x, x.shape if self.kind == POOL_GRAD else pooled)
        a.n = 0
        a.used = 0
        _push_bhw(&a, x, keep)
        if self.kind != POOL:
            _push_bhw(&a, o, keep)
            _push_bhw(&a, gz, keep)
        push_array(&a, res)
        for v in (_leading(x), x.dims[x.nd - 2], x.dims[x.nd - 1], oh, ow, self.ws[0],
                  self.ws[1], self.st[0], self.st[1], self.pad[0], self.pad[1], self.mode):
            push_i64(&a, v)
        self.dev.launch(self.k, _groups(res.size, self.k.local), self.k.local, &a)
        store(regs, outs[0], res)
        return 0


# -- helpers ---------------------------------------------------------------------------
cdef cnp.npy_intp _floordiv(cnp.npy_intp a, cnp.npy_intp b) noexcept:
    """Python's a // b for b > 0 (C's / truncates toward 0)."""
    return a // b if a >= 0 else -((-a + b - 1) // b)


cdef GpuArray _filters(GpuArray kern):
    """The filters as an (F, C/G * kh * kw) C-contiguous block (copied when not)."""
    return kern if kern.c_contig() else kern.copy()


cdef GpuArray _matrix(Device dev, cnp.npy_intp r, cnp.npy_intp c, int typenum):
    cdef cnp.npy_intp d[2]
    d[0], d[1] = r, c
    return empty(dev, 2, d, typenum)


cdef GpuArray _block(GpuArray x, cnp.npy_intp row0, cnp.npy_intp rows, cnp.npy_intp cols):
    """Rows row0 .. row0 + rows of C-contiguous x seen as a (rows, cols) matrix."""
    cdef cnp.npy_intp d[2]
    cdef cnp.npy_intp s[2]
    d[0], d[1] = rows, cols
    s[0], s[1] = cols * x.itemsize, x.itemsize
    return view(x, 2, d, s, x.offset + row0 * cols * x.itemsize)


cdef void _sub(Operand *o, GpuArray x, cnp.npy_intp start, cnp.npy_intp r, cnp.npy_intp c,
               cnp.npy_intp s0, cnp.npy_intp s1) noexcept:
    """The r x c matrix of element strides s0, s1 at element ``start`` of C-contiguous x."""
    set_operand(o, x, r, c, s0 * x.itemsize, s1 * x.itemsize)
    o.off += start


cdef int _push_at(vmc_args *a, GpuArray x, cnp.npy_intp elements) except -1:
    """x's buffer and its offset, ``elements`` further on."""
    cdef uint64_t h = x.mem.handle
    if vmc_push(a, &h, 8) != 0:
        raise ValueError("too many kernel arguments")
    return push_i64(a, x.offset // x.itemsize + elements)


cdef int _push_geo(vmc_args *a, Geo *g, cnp.npy_intp nb, int flip) except -1:
    for v in (nb, g.c, g.h, g.w, g.kh, g.kw, g.oh, g.ow, g.ph, g.pw, g.sy, g.sx, g.dy, g.dx,
              flip):
        push_i64(a, v)
    return 0


cdef GpuArray _like(GpuArray x, tuple shape):
    cdef cnp.npy_intp d[32]
    cdef int i
    for i in range(len(shape)):
        d[i] = shape[i]
    return empty(x.dev, len(shape), d, x.typenum)


cdef int _expect(GThunk t, GpuArray x, str what, tuple got, tuple want) except -1:
    if got != want:
        raise ValueError(f"{t.label}: {what} has shape {got}, expected {want} for an input "
                         f"of shape {x.shape}")
    return 0


cdef cnp.npy_intp _leading(GpuArray x) noexcept:
    cdef cnp.npy_intp b = 1
    cdef int d
    for d in range(x.nd - 2):
        b *= x.dims[d]
    return b


cdef int _push_bhw(vmc_args *a, GpuArray x, list keep) except -1:
    """x as (B, H, W): its buffer, offset and element strides. The leading dims
    must collapse into one stride, else a C-contiguous copy is passed (kept
    alive in ``keep`` until the launch: a block freed earlier could be handed
    out again to the next operand's copy)."""
    cdef cnp.npy_intp sb = 0, expect = -1
    cdef int d
    for d in range(x.nd - 3, -1, -1):
        if x.dims[d] == 1:
            continue
        if expect == -1:
            sb = x.strd[d]
        elif x.strd[d] != expect:
            x = x.copy()
            keep.append(x)
            return _push_bhw(a, x, keep)
        expect = x.strd[d] * x.dims[d]
    push_array(a, x)
    push_i64(a, sb // x.itemsize)
    push_i64(a, x.strd[x.nd - 2] // x.itemsize)
    push_i64(a, x.strd[x.nd - 1] // x.itemsize)
    return 0
