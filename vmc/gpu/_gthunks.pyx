"""GPU thunks under the VM's C-thunk ABI, the same for CUDA and OpenCL.

A ``GThunk`` is a small object whose ``run(regs, ins, outs)`` is a C method:
the VM calls ``_trampoline`` through a function pointer with the object as
ctx, so a GPU instruction costs no Python frame. ``run`` checks the inputs,
takes outputs from the device's pool, packs the kernel's arguments and
launches through ``Device.launch`` (cuLaunchKernel / clEnqueueNDRangeKernel).

``EwThunk`` runs the kernels of ``vmc.gpu.codegen`` for one fused group:
elementwise (dims collapsed at launch, so most calls run the one-dim kernel)
or with a reduction (a work-item per output element when there are many, a
work-group per element, or per part of one, when there are few).
"""
cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_New
from cpython.ref cimport PyObject
from libc.string cimport memcpy

from vmc.gpu._gpu cimport (MAXDIM, Device, GpuArray, Kernel, empty, push_array, push_i64,
                           vmc_args, vmc_push)

import numpy as np

cnp.import_array()

# One work-item per element (a grid-stride loop only past this many groups): PoCL
# vectorizes across the work-items of a group only when each does one element.
cdef size_t MAX_GROUPS = 1 << 30

cdef class GThunk:
    """Base of the GPU C thunks: ``run`` does the work; ``label`` names it."""

    cdef int run(self, PyObject **regs, const int *ins, const int *outs) except -1:
        raise NotImplementedError

    def __call__(self, *inputs):
        """Run from Python (tests, the reference VM): the outputs, a tuple when
        several."""
        return call_python(self, inputs, self.n_outputs())

    cpdef int n_outputs(self):
        return 1


cdef int _trampoline(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    return (<GThunk>ctx).run(regs, ins, outs)


def as_cthunk(GThunk t):
    """The thunk as a ``CThunk`` for the VM (ctx: the object itself; keepalive holds it)."""
    from vmc.gpu.compat import CThunk
    return CThunk(fn=PyCapsule_New(<void *>_trampoline, "vmc_thunk", NULL),
                  ctx=PyCapsule_New(<void *>t, "vmc_ctx", NULL), keepalive=t)


def call_python(GThunk t, inputs, int n_out):
    """Run a GThunk on a small register file built from ``inputs``."""
    cdef int n_in = len(inputs), k
    cdef PyObject *regs[2 * MAXOPS]
    cdef int ins[MAXOPS]
    cdef int outs[MAXOPS]
    if n_in + n_out > 2 * MAXOPS or n_in > MAXOPS or n_out > MAXOPS:
        raise ValueError("too many operands")
    for k in range(n_in + n_out):
        regs[k] = NULL
    try:
        for k in range(n_in):
            v = inputs[k]
            _incref(<PyObject *>v)
            regs[k] = <PyObject *>v
            ins[k] = k
        for k in range(n_out):
            outs[k] = n_in + k
        t.run(regs, ins, outs)
        res = tuple(reg(regs, n_in + k) for k in range(n_out))
    finally:
        for k in range(n_in + n_out):
            _xdecref(regs[k])
    return res[0] if n_out == 1 else res


# -- fused elementwise groups ---------------------------------------------------------
cdef class EwThunk(GThunk):
    """One fused group (a ``KernelSpec`` and which inputs come by value)."""

    def __init__(self, Device dev, spec, by_value, dict kernels, str k, size_t groups_hint,
                 str label):
        cdef int j, d, q
        self.dev, self.label, self.groups_hint = dev, label, groups_hint
        self.nin, self.nout, self.nd = len(spec.inputs), len(spec.outputs), spec.ndim
        if self.nin + self.nout > MAXOPS or self.nd > MAXDIM:
            raise NotImplementedError("too many operands or dims for a GPU kernel")
        for j, (dt, flags) in enumerate(spec.inputs):
            self.in_type[j] = np.dtype(dt).num
            self.by_value[j] = bool(by_value[j])
            for d in range(self.nd):
                self.bcast[j][d] = bool(flags[d])
        for q, (_, dt) in enumerate(spec.outputs):
            self.out_type[q] = np.dtype(dt).num
            self.out_size[q] = np.dtype(dt).itemsize
            self.inplace[q] = -1
        for q, j in spec.inplace:
            self.inplace[q] = j
        self.reduce = spec.reduce is not None
        for d in range(self.nd):
            self.raxis[d] = 0
        if self.reduce:
            for a in spec.reduce[1]:
                self.raxis[a % self.nd] = 1
            self.krt, self.krg = kernels[f"{k}_rt"], kernels[f"{k}_rg"]
            self.krc = kernels[f"{k}_rc"]
        else:
            self.kc = kernels[f"{k}_c"]
            self.ks = kernels.get(f"{k}_s")

    cpdef int n_outputs(self):
        return self.nout

    cdef int _loop_shape(self, PyObject **arrs, cnp.npy_intp *loop) except -1:
        """The loop's shape; only dims of static length 1 broadcast."""
        cdef int j, d
        cdef cnp.npy_intp n
        for d in range(self.nd):
            loop[d] = -1
            for j in range(self.nin):
                if not self.by_value[j] and not self.bcast[j][d]:
                    n = (<GpuArray>arrs[j]).dims[d]
                    if loop[d] < 0:
                        loop[d] = n
                    elif n != loop[d]:
                        self._shape_error(arrs, j, d, loop[d])
            if loop[d] < 0:
                loop[d] = 1
            for j in range(self.nin):
                if not self.by_value[j] and self.bcast[j][d] and (<GpuArray>arrs[j]).dims[d] != 1:
                    self._shape_error(arrs, j, d, 1)
        return 0

    cdef int _shape_error(self, PyObject **arrs, int j, int d, cnp.npy_intp want) except -1:
        shapes = [(<GpuArray>arrs[i]).shape if not self.by_value[i] else () for i in range(self.nin)]
        raise ValueError(f"{self.label}: input shapes {', '.join(map(str, shapes))} do not "
                         f"match (input {j}, dim {d}: {(<GpuArray>arrs[j]).dims[d]} vs {want}; only dims "
                         f"of static length 1 broadcast)")

    cdef int _gather(self, PyObject **regs, const int *ins, PyObject **arrs, list keep,
                     vmc_args *vals) except -1:
        """Check the inputs; GpuArrays into ``arrs``, host values packed into ``vals``."""
        cdef int j
        cdef object v
        cdef cnp.ndarray h
        for j in range(self.nin):
            v = reg(regs, ins[j])
            if self.by_value[j]:
                h = cnp.PyArray_FROMANY(v, self.in_type[j], 0, MAXDIM,
                                        cnp.NPY_ARRAY_CARRAY_RO)
                if cnp.PyArray_SIZE(h) != 1:
                    raise ValueError(f"{self.label}: input {j} must hold one value, got "
                                     f"shape {np.shape(v)}")
                if vmc_push(vals, cnp.PyArray_DATA(h), h.itemsize) != 0:
                    raise ValueError("too many kernel arguments")
                continue
            if type(v) is not GpuArray:
                raise TypeError(f"{self.label}: input {j} must be a GpuArray on "
                                f"{self.dev.name}, got {type(v).__name__}")
            arrs[j] = <PyObject *>v
            if (<GpuArray>arrs[j]).typenum != self.in_type[j] or (<GpuArray>arrs[j]).nd != self.nd:
                raise TypeError(f"{self.label}: input {j} is {v}, expected "
                                f"{np.dtype(cnp.PyArray_DescrFromType(self.in_type[j]))} "
                                f"with {self.nd} dims")
            keep.append(v)
        return 0

    cdef int run(self, PyObject **regs, const int *ins, const int *outs) except -1:
        cdef PyObject *arrs[MAXOPS]
        cdef cnp.npy_intp loop[MAXDIM]
        cdef vmc_args vals
        cdef list keep = []
        cdef int q
        vals.n = 0
        vals.used = 0
        for q in range(MAXOPS):
            arrs[q] = NULL
        self._gather(regs, ins, arrs, keep, &vals)
        self._loop_shape(arrs, loop)
        if self.reduce:
            self._run_reduce(arrs, loop, &vals, regs, outs)
        else:
            self._run_elementwise(arrs, loop, &vals, regs, ins, outs)
        return 0

    cdef GpuArray _output(self, int q, PyObject **arrs, cnp.npy_intp *loop, PyObject **regs,
                          const int *ins):
        """Output q: its dying input when it may be written in place, else new."""
        cdef int j = self.inplace[q], d
        cdef GpuArray x
        if j >= 0 and not self.by_value[j]:
            x = <GpuArray>arrs[j]
            if x.typenum == self.out_type[q] and x.c_contig() and x.offset >= 0:
                for d in range(self.nd):
                    if x.dims[d] != loop[d]:
                        break
                else:
                    return x
        return empty(self.dev, self.nd, loop, self.out_type[q])

    cdef int _run_elementwise(self, PyObject **arrs, cnp.npy_intp *loop, vmc_args *vals,
                              PyObject **regs, const int *ins, const int *outs) except -1:
        cdef cnp.npy_intp st[MAXOPS][MAXDIM]
        cdef cnp.npy_intp cdims[MAXDIM]
        cdef cnp.npy_intp n = 1
        cdef int j, d, q, nc = 0, v
        cdef list res = [self._output(q, arrs, loop, regs, ins) for q in range(self.nout)]
        cdef vmc_args a
        for d in range(self.nd):
            n *= loop[d]
        # collapse: drop length-1 dims, merge a dim into the next where every
        # input's strides allow (outputs are C-contiguous: they always do)
        for d in range(self.nd):
            if loop[d] == 1:
                continue
            if nc > 0 and self._mergeable(arrs, st, nc - 1, d, loop):
                cdims[nc - 1] *= loop[d]
                for j in range(self.nin):
                    if not self.by_value[j]:
                        st[j][nc - 1] = self._stride(<GpuArray>arrs[j], d, loop)
                continue
            cdims[nc] = loop[d]
            for j in range(self.nin):
                if not self.by_value[j]:
                    st[j][nc] = self._stride(<GpuArray>arrs[j], d, loop)
            nc += 1
        a.n = 0
        a.used = 0
        push_i64(&a, n)
        if nc > 1:
            for d in range(1, self.nd):     # pad to the kernel's dims at the front
                push_i64(&a, cdims[d - (self.nd - nc)] if d >= self.nd - nc else 1)
        v = 0
        for j in range(self.nin):
            if self.by_value[j]:
                vmc_push(&a, (<void **>vals.ptr)[v], vals.size[v])
                v += 1
                continue
            push_array(&a, <GpuArray>arrs[j])
            if nc <= 1:
                push_i64(&a, st[j][0] if nc == 1 else 0)
            else:
                for d in range(self.nd):
                    push_i64(&a, st[j][d - (self.nd - nc)] if d >= self.nd - nc else 0)
        for q in range(self.nout):
            push_array(&a, <GpuArray>res[q])
        if n > 0:
            self.dev.launch(self.kc if nc <= 1 else self.ks, self._groups(n, self.kc.local),
                            self.kc.local, &a)
        for q in range(self.nout):
            store(regs, outs[q], res[q])
        return 0

    cdef cnp.npy_intp _stride(self, GpuArray x, int d, cnp.npy_intp *loop) noexcept:
        """Input stride in elements along loop dim d (0 where it broadcasts)."""
        if x.dims[d] == 1 or loop[d] == 1:
            return 0
        return x.strd[d] // x.itemsize

    cdef bint _mergeable(self, PyObject **arrs, cnp.npy_intp st[MAXOPS][MAXDIM], int c, int d,
                         cnp.npy_intp *loop) noexcept:
        """Whether loop dim d continues collapsed dim c for every input."""
        cdef int j
        for j in range(self.nin):
            if self.by_value[j]:
                continue
            if st[j][c] != self._stride(<GpuArray>arrs[j], d, loop) * loop[d]:
                return False
        return True

    cdef size_t _groups(self, cnp.npy_intp n, size_t local) noexcept:
        cdef size_t g = (n + local - 1) // local
        return g if g < MAX_GROUPS else MAX_GROUPS

    cdef int _run_reduce(self, PyObject **arrs, cnp.npy_intp *loop, vmc_args *vals,
                         PyObject **regs, const int *outs) except -1:
        cdef cnp.npy_intp oshape[MAXDIM]
        cdef cnp.npy_intp n_out = 1, n_red = 1, n_split = 1, chunk
        cdef int d, q, ko = 0
        cdef list res
        cdef vmc_args a
        for d in range(self.nd):
            if self.raxis[d]:
                n_red *= loop[d]
            else:
                oshape[ko] = loop[d]
                ko += 1
                n_out *= loop[d]
        res = [empty(self.dev, ko, oshape, self.out_type[q]) for q in range(self.nout)]
        if n_out > 0:
            # many outputs (or short ones): a work-item each; else groups, and
            # when the outputs cannot fill the device, several groups per output
            if n_out >= <cnp.npy_intp>(self.groups_hint * self.krg.local) // 4 or n_red <= 32:
                self._pack_reduce(&a, arrs, loop, vals, n_out, n_red, 0, res)
                self.dev.launch(self.krt, self._groups(n_out, self.krt.local),
                                self.krt.local, &a)
            else:
                chunk = <cnp.npy_intp>self.krg.local * 8
                n_split = (n_red + chunk - 1) // chunk
                if n_split > <cnp.npy_intp>self.groups_hint * 2 // n_out:
                    n_split = max(<cnp.npy_intp>self.groups_hint * 2 // n_out, 1)
                if n_split == 1:
                    self._pack_reduce(&a, arrs, loop, vals, n_out, n_red, 1, res)
                    self.dev.launch(self.krg, min(<size_t>n_out, self.groups_hint * 4),
                                    self.krg.local, &a)
                else:
                    self._split_reduce(arrs, loop, vals, n_out, n_red, n_split, res)
        for q in range(self.nout):
            store(regs, outs[q], res[q])
        return 0

    cdef int _split_reduce(self, PyObject **arrs, cnp.npy_intp *loop, vmc_args *vals,
                           cnp.npy_intp n_out, cnp.npy_intp n_red, cnp.npy_intp n_split,
                           list res) except -1:
        cdef cnp.npy_intp m = n_out * n_split
        cdef vmc_args a
        cdef int q
        cdef list part = [empty(self.dev, 1, &m, self.out_type[q]) for q in range(self.nout)]
        self._pack_reduce(&a, arrs, loop, vals, n_out, n_red, n_split, part)
        self.dev.launch(self.krg, min(<size_t>m, self.groups_hint * 4), self.krg.local, &a)
        a.n = 0
        a.used = 0
        push_i64(&a, n_out)
        push_i64(&a, n_split)
        for q in range(self.nout):
            push_array(&a, <GpuArray>part[q])
        for q in range(self.nout):
            push_array(&a, <GpuArray>res[q])
        self.dev.launch(self.krc, self._groups(n_out, self.krc.local), self.krc.local, &a)
        return 0

    cdef int _pack_reduce(self, vmc_args *a, PyObject **arrs, cnp.npy_intp *loop,
                          vmc_args *vals, cnp.npy_intp n_out, cnp.npy_intp n_red,
                          cnp.npy_intp n_split, list res) except -1:
        """Arguments of ``_rt`` (n_split 0) or ``_rg``: sizes, the kept and reduced
        dims but the first of each, then inputs (strides over kept, then
        reduced dims) and outputs."""
        cdef int j, d, v = 0, first, red
        a.n = 0
        a.used = 0
        push_i64(a, n_out)
        push_i64(a, n_red)
        if n_split:
            push_i64(a, n_split)
        for red in range(2):
            first = 1
            for d in range(self.nd):
                if self.raxis[d] == red:
                    if not first:
                        push_i64(a, loop[d])
                    first = 0
        for j in range(self.nin):
            if self.by_value[j]:
                vmc_push(a, (<void **>vals.ptr)[v], vals.size[v])
                v += 1
                continue
            push_array(a, <GpuArray>arrs[j])
            for red in range(2):
                for d in range(self.nd):
                    if self.raxis[d] == red:
                        push_i64(a, self._stride(<GpuArray>arrs[j], d, loop))
        for j in range(self.nout):
            push_array(a, <GpuArray>res[j])
        return 0


# -- graphs: a compiled function's device work captured once, replayed after --------
ctypedef int (*vmc_thunk_fn)(void *ctx, PyObject **regs, const int *ins,
                             const int *outs) except? -1

cdef extern from "Python.h":
    void *PyCapsule_GetPointer(object capsule, const char *name) except? NULL


cdef enum:
    G_WARM = 0
    G_CAPTURE = 1
    G_REPLAY = 2
    G_OFF = 3


cdef class ReplayThunk(GThunk):
    """One instruction of a function whose device work is replayed as graphs
    (``vmc.gpu.graphs``). It runs its thunk, except when replaying a captured
    segment: then it stores the outputs the capture left (the graph rewrites
    their buffers), and the segment's first instruction checks the segment's
    inputs and launches the graph."""
    cdef public object state           # graphs.GraphState (mode, segments)
    cdef public object inner           # the thunk: a CThunk or a Python callable
    cdef vmc_thunk_fn cfn
    cdef void *cctx
    cdef public bint capturable
    cdef public int n_in, n_out
    cdef public list saved             # outputs of the capture call
    cdef public object segment         # graphs.Segment this belongs to, or None
    cdef public bint head              # the segment's first instruction

    def __init__(self, state, inner, bint capturable, int n_in, int n_out, str label):
        from vmc.gpu.compat import CThunk
        self.state, self.inner, self.capturable = state, inner, capturable
        self.n_in, self.n_out, self.label = n_in, n_out, label
        self.saved, self.segment, self.head = None, None, False
        self.cfn, self.cctx = NULL, NULL
        if isinstance(inner, CThunk):
            self.cfn = <vmc_thunk_fn>PyCapsule_GetPointer(inner.fn, "vmc_thunk")
            self.cctx = PyCapsule_GetPointer(inner.ctx, "vmc_ctx") if inner.ctx is not None \
                else NULL

    cpdef int n_outputs(self):
        return self.n_out

    cdef int _inner(self, PyObject **regs, const int *ins, const int *outs) except -1:
        cdef int k
        if self.cfn != NULL:
            return self.cfn(self.cctx, regs, ins, outs)
        res = self.inner(*[reg(regs, ins[k]) for k in range(self.n_in)])
        if self.n_out == 1:
            store(regs, outs[0], res)
        elif self.n_out > 1:
            for k in range(self.n_out):
                store(regs, outs[k], res[k])
        return 0

    cdef int run(self, PyObject **regs, const int *ins, const int *outs) except -1:
        cdef int mode = self.state.mode, k
        if mode == G_REPLAY and self.capturable and self.segment is not None:
            if self.head:
                vals = [reg(regs, r) for r in self.segment.external_regs]
                if not self.segment.replay(vals):
                    self.state.stop()          # inputs changed shape: run as usual from now
                    return self._inner(regs, ins, outs)
            for k in range(self.n_out):
                store(regs, outs[k], self.saved[k])
            return 0
        if mode != G_CAPTURE:
            return self._inner(regs, ins, outs)
        if not self.capturable:
            self.state.close()                 # the device work so far runs as a graph
            return self._inner(regs, ins, outs)
        self.state.enter(self, [ins[k] for k in range(self.n_in)],
                         [reg(regs, ins[k]) for k in range(self.n_in)])
        self._inner(regs, ins, outs)
        self.saved = [reg(regs, outs[k]) for k in range(self.n_out)]
        self.state.produced([outs[k] for k in range(self.n_out)])
        return 0
