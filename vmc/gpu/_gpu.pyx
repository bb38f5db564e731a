"""The shared core of vmc's GPU drivers: devices, memory, arrays, launches.

CUDA (``vmc/gpu/cuda.py``, over pycuda) and OpenCL (``vmc/gpu/opencl.py``,
over PyOpenCL) create the context and compile kernels; everything that runs
per call is here and is the same for both, except one branch per driver entry
point: memory is a 64-bit handle (a CUdeviceptr or a cl_mem), a kernel takes
its arguments packed once (``vmc_args``), and work is queued in order on one
stream (CUDA) or command queue (OpenCL) per device. The entry points come from
the drivers' libraries through dlsym (``_gpu_api.h``): no Python per launch.

Memory is pooled: a freed allocation returns to its size bucket and is handed
out again, stream-ordered (the queue is in order, so a later kernel never
overtakes an earlier reader). Running out of memory first empties the pool,
then raises ``GpuMemoryError`` naming the bytes asked for and what is free.
"""
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

import numpy as np

cnp.import_array()

cdef extern from "_gpu_api.h":
    ctypedef int CUresult
    ctypedef uint64_t CUdeviceptr
    ctypedef struct vmc_cuda_api:
        CUresult (*MemAlloc)(CUdeviceptr *p, size_t n) nogil
        CUresult (*MemFree)(CUdeviceptr p) nogil
        CUresult (*MemcpyHtoDAsync)(CUdeviceptr dst, const void *src, size_t n, void *s) nogil
        CUresult (*MemcpyDtoHAsync)(void *dst, CUdeviceptr src, size_t n, void *s) nogil
        CUresult (*MemcpyDtoDAsync)(CUdeviceptr dst, CUdeviceptr src, size_t n, void *s) nogil
        CUresult (*MemsetD8Async)(CUdeviceptr dst, unsigned char v, size_t n, void *s) nogil
        CUresult (*LaunchKernel)(void *f, unsigned gx, unsigned gy, unsigned gz,
                                 unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                                 void *s, void **params, void **extra) nogil
        CUresult (*StreamCreate)(void **s, unsigned flags) nogil
        CUresult (*StreamSynchronize)(void *s) nogil
        CUresult (*MemGetInfo)(size_t *free, size_t *total) nogil
        CUresult (*GetErrorString)(CUresult e, const char **s) nogil
        CUresult (*ModuleLoadData)(void **m, const void *image) nogil
        CUresult (*ModuleGetFunction)(void **f, void *m, const char *name) nogil
        CUresult (*CtxGetCurrent)(void **c) nogil
        CUresult (*CtxSetCurrent)(void *c) nogil
        CUresult (*EventCreate)(void **e, unsigned flags) nogil
        CUresult (*EventRecord)(void *e, void *s) nogil
        CUresult (*EventSynchronize)(void *e) nogil
        CUresult (*EventElapsedTime)(float *ms, void *a, void *b) nogil
        CUresult (*EventDestroy)(void *e) nogil
        CUresult (*StreamBeginCapture)(void *s, int mode) nogil
        CUresult (*StreamEndCapture)(void *s, void **g) nogil
        CUresult (*GraphInstantiateWithFlags)(void **e, void *g, unsigned long long f) nogil
        CUresult (*GraphLaunch)(void *e, void *s) nogil
        CUresult (*GraphExecDestroy)(void *e) nogil
        CUresult (*GraphDestroy)(void *g) nogil
    ctypedef int cl_int
    ctypedef struct vmc_cl_api:
        void *(*CreateBuffer)(void *c, uint64_t flags, size_t n, void *host, cl_int *err) nogil
        cl_int (*ReleaseMemObject)(void *m) nogil
        cl_int (*SetKernelArg)(void *k, unsigned i, size_t n, const void *value) nogil
        cl_int (*EnqueueNDRangeKernel)(void *q, void *k, unsigned dim, const size_t *offset,
                                       const size_t *glob, const size_t *local,
                                       unsigned nwait, const void **wait, void **ev) nogil
        cl_int (*EnqueueReadBuffer)(void *q, void *m, unsigned blocking, size_t off,
                                    size_t n, void *dst, unsigned nwait, const void **wait,
                                    void **ev) nogil
        cl_int (*EnqueueWriteBuffer)(void *q, void *m, unsigned blocking, size_t off,
                                     size_t n, const void *src, unsigned nwait,
                                     const void **wait, void **ev) nogil
        cl_int (*EnqueueCopyBuffer)(void *q, void *src, void *dst, size_t soff, size_t doff,
                                    size_t n, unsigned nwait, const void **wait,
                                    void **ev) nogil
        cl_int (*EnqueueFillBuffer)(void *q, void *m, const void *pattern, size_t psize,
                                    size_t off, size_t n, unsigned nwait, const void **wait,
                                    void **ev) nogil
        cl_int (*Finish)(void *q) nogil
        cl_int (*GetEventProfilingInfo)(void *e, unsigned what, size_t n, void *value,
                                        size_t *ret) nogil
        cl_int (*ReleaseEvent)(void *e) nogil
        cl_int (*WaitForEvents)(unsigned n, const void **evs) nogil
    const char **VMC_CUDA_SYMBOLS
    const char **VMC_CL_SYMBOLS
    const char *vmc_load_api(const char *lib, const char **names, void **fns)
    enum:
        VMC_CU_STREAM_CAPTURE_MODE_RELAXED
        VMC_CUDA_STREAM_NON_BLOCKING "VMC_CU_STREAM_NON_BLOCKING"
        VMC_CUDA_ERROR_OUT_OF_MEMORY
        VMC_CL_MEM_READ_WRITE
        VMC_CL_PROFILING_COMMAND_START
        VMC_CL_PROFILING_COMMAND_END


CUDA_KIND, OPENCL_KIND = CUDA, OPENCL
ERR_SLOTS = 256


class GpuMemoryError(MemoryError):
    """The device ran out of memory (after vmc emptied its pool of freed blocks)."""


class GpuDriverError(RuntimeError):
    """A CUDA or OpenCL call failed."""


cdef vmc_cuda_api CU
cdef vmc_cl_api CL
cdef int _cu_loaded = 0, _cl_loaded = 0

# OpenCL's error codes, for messages (CL/cl.h).
_CL_ERRORS = {-1: "DEVICE_NOT_FOUND", -2: "DEVICE_NOT_AVAILABLE", -4:
              "MEM_OBJECT_ALLOCATION_FAILURE", -5: "OUT_OF_RESOURCES", -6:
              "OUT_OF_HOST_MEMORY", -30: "INVALID_VALUE", -36: "INVALID_COMMAND_QUEUE",
              -38: "INVALID_MEM_OBJECT", -48: "INVALID_KERNEL", -49: "INVALID_ARG_INDEX",
              -50: "INVALID_ARG_VALUE", -51: "INVALID_ARG_SIZE", -52: "INVALID_KERNEL_ARGS",
              -54: "INVALID_WORK_GROUP_SIZE", -55: "INVALID_WORK_ITEM_SIZE", -61:
              "INVALID_BUFFER_SIZE", -63: "INVALID_GLOBAL_WORK_SIZE"}
_CL_OOM = (-4, -5, -6, -61)


def load_api(int kind):
    """Load the driver's entry points (once); RuntimeError naming what is missing."""
    global _cu_loaded, _cl_loaded
    cdef const char *missing
    if kind == CUDA and not _cu_loaded:
        missing = vmc_load_api(b"libcuda.so.1", VMC_CUDA_SYMBOLS, <void **>&CU)
        if missing != NULL:
            raise GpuDriverError(f"the CUDA driver library lacks {missing.decode()} "
                                 "(libcuda.so.1: is the NVIDIA driver installed?)")
        _cu_loaded = 1
    elif kind == OPENCL and not _cl_loaded:
        missing = vmc_load_api(b"libOpenCL.so.1", VMC_CL_SYMBOLS, <void **>&CL)
        if missing != NULL:
            raise GpuDriverError(f"the OpenCL library lacks {missing.decode()} "
                                 "(libOpenCL.so.1: apt-get install ocl-icd-libopencl1)")
        _cl_loaded = 1


cdef int cu_check(CUresult rc, str what) except -1:
    cdef const char *s = NULL
    if rc == 0:
        return 0
    CU.GetErrorString(rc, &s)
    raise GpuDriverError(f"CUDA {what} failed: error {rc} "
                         f"({s.decode() if s != NULL else 'unknown'})")


cdef int cl_check(cl_int rc, str what) except -1:
    if rc == 0:
        return 0
    raise GpuDriverError(f"OpenCL {what} failed: error {rc} "
                         f"(CL_{_CL_ERRORS.get(rc, 'UNKNOWN')})")


cdef size_t _bucket(size_t n) noexcept:
    """The pooled size for a request of n bytes: 512-byte steps up to 1 MiB,
    then steps of an eighth of the power of two below (at most 12.5% unused)."""
    cdef size_t step = 512
    if n < 512:
        return 512
    if n > (1 << 20):
        step = 1
        while step * 16 <= n:
            step <<= 1
    return (n + step - 1) // step * step


cdef class Device:
    """One GPU (or OpenCL device), its in-order queue and its memory pool.

    Made by the drivers (``vmc.gpu.cuda``, ``vmc.gpu.opencl``) with
    ``Device.__new__`` and ``_setup``; users get one from ``vmc.gpu.device()``."""

    def _setup(self, int kind, str name, str description, size_t context, size_t stream,
               size_t total_mem, size_t max_alloc, keep):
        load_api(kind)
        self.kind, self.name, self.description = kind, name, description
        self.context, self.stream = <void *>context, <void *>stream
        self.total_mem, self.max_alloc = total_mem, max_alloc
        self.pool, self.in_use, self.cached = {}, 0, 0
        self.keep, self.capture, self.profiler = keep, None, None
        self.err_buf, self.err_labels, self.err_pending = None, [], False
        self.recording = None

    def new_cuda_stream(self):
        """A new non-blocking CUDA stream in the current context (its handle)."""
        cdef void *s = NULL
        load_api(CUDA)
        cu_check(CU.StreamCreate(&s, VMC_CUDA_STREAM_NON_BLOCKING), "cuStreamCreate")
        return <size_t>s

    def set_cuda_stream(self, size_t stream):
        self.stream = <void *>stream

    @property
    def stream_handle(self):
        """The CUstream / cl_command_queue everything of this device is queued on."""
        return <size_t>self.stream

    cdef int activate(self) except -1:
        """Make the device's CUDA context current on this thread (a no-op when it is)."""
        cdef void *cur = NULL
        if self.kind == CUDA:
            CU.CtxGetCurrent(&cur)
            if cur != self.context:
                cu_check(CU.CtxSetCurrent(self.context), "cuCtxSetCurrent")
        return 0

    # -- memory ---------------------------------------------------------------
    cdef Allocation alloc(self, size_t nbytes):
        cdef size_t b = _bucket(nbytes)
        cdef list free = self.pool.get(b)
        cdef Allocation a = Allocation.__new__(Allocation)
        a.dev, a.nbytes = self, b
        if free:
            a.handle = free.pop()
            self.cached -= b
        else:
            a.handle = self._new_block(b, nbytes)
        self.in_use += b
        if self.capture is not None:
            self.capture.append(a)      # pinned for the captured graph's life
        return a

    cdef uint64_t _new_block(self, size_t b, size_t nbytes) except? 0:
        cdef uint64_t h = 0
        cdef int oom = 0, attempt
        cdef CUresult rc
        cdef cl_int err
        for attempt in range(2):
            if b > self.max_alloc:
                oom = 1
            elif self.kind == CUDA:
                self.activate()
                rc = CU.MemAlloc(<CUdeviceptr *>&h, b)
                oom = rc == VMC_CUDA_ERROR_OUT_OF_MEMORY
                if not oom:
                    cu_check(rc, f"cuMemAlloc({b})")
            else:
                err = 0
                h = <uint64_t>CL.CreateBuffer(self.context, VMC_CL_MEM_READ_WRITE, b, NULL,
                                              &err)
                oom = err in _CL_OOM
                if not oom:
                    cl_check(err, f"clCreateBuffer({b})")
            if not oom:
                return h
            if attempt == 0 and self.cached:
                self.free_cache()       # hand the pool back to the driver and retry
            else:
                break
        free, total = self.mem_info()
        raise GpuMemoryError(
            f"out of memory on {self.name} ({self.description}): cannot allocate {nbytes} "
            f"bytes; {free} bytes free of {total} (vmc holds {self.in_use} in use"
            + (f"; the largest single allocation is {self.max_alloc}" if b > self.max_alloc
               else "") + ")")

    cdef void release(self, uint64_t handle, size_t bucket) noexcept:
        self.in_use -= bucket
        if self.pool is None:
            return
        try:
            lst = self.pool.get(bucket)
            if lst is None:
                lst = self.pool[bucket] = []
            lst.append(handle)
            self.cached += bucket
        except BaseException:
            pass

    def free_cache(self):
        """Hand every pooled block back to the driver (after the queue drains)."""
        self.sync()
        for b, handles in self.pool.items():
            for h in handles:
                if self.kind == CUDA:
                    CU.MemFree(<CUdeviceptr>h)
                else:
                    CL.ReleaseMemObject(<void *><size_t>h)
        self.pool, self.cached = {}, 0

    def mem_info(self):
        """(free bytes, total bytes): the driver's (CUDA), or the device's size
        less what vmc holds (OpenCL has no query of free memory)."""
        cdef size_t free = 0, total = 0
        if self.kind == CUDA:
            self.activate()
            if CU.MemGetInfo(&free, &total) == 0:
                return int(free), int(total)
        held = int(self.in_use) + int(self.cached)
        return max(int(self.total_mem) - held, 0), int(self.total_mem)

    # -- transfers and launches (all queued in order) --------------------------
    cdef int htod(self, uint64_t dst, size_t off, const void *src, size_t n) except -1:
        if n == 0:
            return 0
        if self.capture is not None:
            raise GpuDriverError("a copy from the host while a device graph is captured")
        if self.kind == CUDA:
            self.activate()
            cu_check(CU.MemcpyHtoDAsync(dst + off, src, n, self.stream), "cuMemcpyHtoD")
        else:
            cl_check(CL.EnqueueWriteBuffer(self.stream, <void *><size_t>dst, 1, off, n, src,
                                           0, NULL, NULL), "clEnqueueWriteBuffer")
        return 0

    cdef int dtoh(self, void *dst, uint64_t src, size_t off, size_t n) except -1:
        """Blocking: returns when the bytes are on the host."""
        cdef int rc
        if n == 0:
            return 0
        if self.capture is not None:
            raise GpuDriverError("a read to the host while a device graph is captured")
        if self.kind == CUDA:
            self.activate()
            with nogil:
                rc = CU.MemcpyDtoHAsync(dst, src + off, n, self.stream)
                if rc == 0:
                    rc = CU.StreamSynchronize(self.stream)
            cu_check(rc, "cuMemcpyDtoH")
        else:
            with nogil:
                rc = CL.EnqueueReadBuffer(self.stream, <void *><size_t>src, 1, off, n, dst,
                                          0, NULL, NULL)
            cl_check(rc, "clEnqueueReadBuffer")
        if self.err_pending:
            self.check_errors()
        return 0

    # -- errors found on the device ----------------------------------------------
    def error_slot(self, str label):
        """A flag slot for a kernel to set on bad input (an index out of range);
        ``label`` (formatted with ``value``: what the kernel wrote) says what went
        wrong. Kernels take (flags buffer, offset, slot)."""
        self.error_buffer()
        self.err_labels.append(label)
        return (len(self.err_labels) - 1) % ERR_SLOTS

    def error_buffer(self):
        """The int64 flags kernels set on bad input (made on first use)."""
        if self.err_buf is None:
            self.err_buf = gpu_zeros(self, (ERR_SLOTS,), np.int64)
        return self.err_buf

    def check_errors(self):
        """Raise the error a kernel flagged since the last check (IndexError),
        clearing the flags: device errors surface at the next read to the host,
        before any later work (updates included) is trusted."""
        if not self.err_pending or self.err_buf is None:
            return
        self.err_pending = False
        flags = self.err_buf.get()
        bad = np.flatnonzero(flags)
        if bad.size:
            k = int(bad[0])
            self.zero((<GpuArray>self.err_buf).mem.handle, 0, ERR_SLOTS * 8)
            labels = [lab for i, lab in enumerate(self.err_labels) if i % ERR_SLOTS == k]
            what = labels[len(labels) - 1] if labels else "a kernel flagged bad input ({value})"
            raise IndexError(what.format(value=int(flags[k])) + " (found on " +
                             f"{self.name}, reported at the next read from it)")

    cdef int dtod(self, uint64_t dst, size_t doff, uint64_t src, size_t soff,
                  size_t n) except -1:
        if n == 0:
            return 0
        if self.recording is not None:
            self.recording.append(("copy", dst, doff, src, soff, n))
            return 0
        if self.kind == CUDA:
            self.activate()
            cu_check(CU.MemcpyDtoDAsync(dst + doff, src + soff, n, self.stream), "cuMemcpyDtoD")
        else:
            cl_check(CL.EnqueueCopyBuffer(self.stream, <void *><size_t>src,
                                          <void *><size_t>dst, soff, doff, n, 0, NULL, NULL),
                     "clEnqueueCopyBuffer")
        return 0

    cdef int zero(self, uint64_t dst, size_t off, size_t n) except -1:
        cdef unsigned char z = 0
        if n == 0:
            return 0
        if self.recording is not None:
            self.recording.append(("zero", dst, off, n))
            return 0
        if self.kind == CUDA:
            self.activate()
            cu_check(CU.MemsetD8Async(dst + off, 0, n, self.stream), "cuMemsetD8")
        else:
            cl_check(CL.EnqueueFillBuffer(self.stream, <void *><size_t>dst, &z, 1, off, n,
                                          0, NULL, NULL), "clEnqueueFillBuffer")
        return 0

    cdef int launch(self, Kernel k, size_t groups, size_t local, vmc_args *a) except -1:
        cdef vmc_args *f = a
        cdef size_t glob
        cdef int i
        cdef cl_int rc
        cdef void *ev = NULL
        if groups == 0:
            return 0
        if self.recording is not None:
            self.recording.append(("launch", k, groups, local, _pack(a)))
            return 0
        if self.profiler is not None and (<EventLog>self.profiler).current is not None:
            (<EventLog>self.profiler).before(self)
        if self.kind == CUDA:
            self.activate()
            cu_check(CU.LaunchKernel(k.handle, <unsigned>groups, 1, 1, <unsigned>local, 1, 1,
                                     0, self.stream, f.ptr, NULL), f"launch of {k.name}")
        else:
            for i in range(f.n):
                rc = CL.SetKernelArg(k.handle, i, f.size[i], f.ptr[i])
                if rc != 0:
                    cl_check(rc, f"clSetKernelArg({k.name}, {i})")
            glob = groups * local
            cl_check(CL.EnqueueNDRangeKernel(self.stream, k.handle, 1, NULL, &glob, &local,
                                             0, NULL, &ev if self.profiler is not None
                                             else NULL), f"launch of {k.name}")
        if self.profiler is not None:
            (<EventLog>self.profiler).after(self, ev)
        return 0

    cdef int sync(self) except -1:
        cdef int rc
        if self.kind == CUDA:
            self.activate()
            with nogil:
                rc = CU.StreamSynchronize(self.stream)
            cu_check(rc, "cuStreamSynchronize")
        else:
            with nogil:
                rc = CL.Finish(self.stream)
            cl_check(rc, "clFinish")
        return 0

    def synchronize(self):
        """Wait until everything queued on the device has run."""
        self.sync()

    # -- graphs: work captured once and replayed ----------------------------------
    def begin_capture(self):
        """Start recording the device work queued from now on (nothing runs until
        the graph is launched): a CUDA stream capture, or on OpenCL a list of
        the launches and copies (the same semantics, replayed by enqueuing them).
        Allocations made meanwhile stay pinned for the graph's life."""
        if self.capture is not None:
            raise GpuDriverError("a device graph is already being captured")
        self.sync()
        if self.kind == CUDA:
            self.activate()
            cu_check(CU.StreamBeginCapture(self.stream, VMC_CU_STREAM_CAPTURE_MODE_RELAXED),
                     "cuStreamBeginCapture")
        else:
            self.recording = []
        self.capture = []

    def end_capture(self, bint keep=True):
        """Stop capturing; the Graph (None when ``keep`` is False: discarded)."""
        cdef void *g = NULL
        cdef void *ex = NULL
        cdef Graph graph = Graph.__new__(Graph)
        pinned, self.capture = self.capture, None
        graph.dev, graph.pinned, graph.commands = self, pinned, None
        if self.kind == CUDA:
            rc = CU.StreamEndCapture(self.stream, &g)
            if keep:
                cu_check(rc, "cuStreamEndCapture")
                cu_check(CU.GraphInstantiateWithFlags(&ex, g, 0), "cuGraphInstantiate")
                graph.handle = ex
            if g != NULL:
                CU.GraphDestroy(g)
        else:
            graph.commands, self.recording = self.recording, None
        return graph if keep else None

    # -- what the drivers use to build kernels ---------------------------------
    def load_cuda_module(self, bytes cubin):
        """Load a cubin into this device's context; its CUmodule handle."""
        cdef void *mod = NULL
        self.activate()
        cu_check(CU.ModuleLoadData(&mod, PyBytes_AS_STRING(cubin)), "cuModuleLoadData")
        return <size_t>mod

    def cuda_kernel(self, size_t module, str name, size_t local):
        """The kernel ``name`` of a loaded module."""
        cdef void *fn = NULL
        self.activate()
        cu_check(CU.ModuleGetFunction(&fn, <void *>module, name.encode()),
                 f"cuModuleGetFunction({name})")
        return make_kernel(self, <size_t>fn, name, local, None)

    def __repr__(self):
        return f"<vmc.gpu.Device {self.name}: {self.description}>"


def make_kernel(Device dev, size_t handle, str name, size_t local, keep):
    """A ``Kernel`` of a driver's handle (CUfunction, or a cl_kernel's int_ptr)."""
    cdef Kernel k = Kernel.__new__(Kernel)
    k.dev, k.handle, k.name, k.local, k.keep = dev, <void *>handle, name, local, keep
    return k


cdef class Allocation:
    """A block of device memory; back to its device's pool when released."""

    def __dealloc__(self):
        if self.dev is not None and self.handle:
            self.dev.release(self.handle, self.nbytes)


cdef class Kernel:
    """A compiled kernel; ``k(groups, *args)`` launches it from Python
    (GpuArrays pass their buffer and element offset, numpy scalars their value)."""

    def __call__(self, size_t groups, *args):
        cdef vmc_args a
        a.n = 0
        a.used = 0
        for v in args:
            if isinstance(v, GpuArray):
                push_array(&a, <GpuArray>v)
            elif isinstance(v, np.generic):
                _push_scalar(&a, v)
            elif isinstance(v, int):
                push_i64(&a, v)
            else:
                raise TypeError(f"kernel {self.name}: argument {v!r} is neither a GpuArray "
                                "nor a numpy scalar")
        self.dev.launch(self, groups, self.local, &a)

    def __repr__(self):
        return f"<vmc.gpu.Kernel {self.name} on {self.dev.name}>"


cdef int _push_scalar(vmc_args *a, v) except -1:
    cdef bytes raw = np.asarray(v).tobytes()
    if vmc_push(a, PyBytes_AS_STRING(raw), len(raw)) != 0:
        raise ValueError("too many kernel arguments")
    return 0


cdef int push_i64(vmc_args *a, long long v) except -1:
    if vmc_push(a, &v, 8) != 0:
        raise ValueError("too many kernel arguments")
    return 0


cdef int push_array(vmc_args *a, GpuArray x) except -1:
    """A GpuArray as two kernel arguments: its buffer and its offset in elements."""
    cdef uint64_t h = x.mem.handle
    if vmc_push(a, &h, 8) != 0:
        raise ValueError("too many kernel arguments")
    return push_i64(a, x.offset // x.itemsize)


cdef class GpuArray:
    """An n-d array in device memory: numpy's shape, strides (bytes) and dtype
    over a pooled allocation. ``get()`` copies it to a numpy array;
    ``to_driver()`` wraps it as the driver's array (pycuda GPUArray, pyopencl
    Array) without copying."""

    @property
    def shape(self):
        return tuple(self.dims[i] for i in range(self.nd))

    @property
    def strides(self):
        return tuple(self.strd[i] for i in range(self.nd))

    @property
    def ndim(self):
        return self.nd

    @property
    def nbytes(self):
        return self.size * self.itemsize

    @property
    def device(self):
        return self.dev.name

    @property
    def flags_c_contiguous(self):
        return bool(self.c_contig())

    cdef bint c_contig(self) noexcept:
        cdef Py_ssize_t s = self.itemsize
        cdef int i
        for i in range(self.nd - 1, -1, -1):
            if self.dims[i] != 1 and self.strd[i] != s:
                return 0
            s *= self.dims[i]
        return 1

    cdef Py_ssize_t extent(self) noexcept:
        """Bytes from the first element to one past the last (0 when empty)."""
        cdef Py_ssize_t e = self.itemsize
        cdef int i
        if self.size == 0:
            return 0
        for i in range(self.nd):
            e += (self.dims[i] - 1) * (self.strd[i] if self.strd[i] > 0 else -self.strd[i])
        return e

    def get(self):
        """A new numpy array with the same values (waits for the device)."""
        cdef GpuArray src = self if self.c_contig() else self.copy()
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(self.nd, self.dims, self.typenum, 0)
        src.dev.dtoh(cnp.PyArray_DATA(out), src.mem.handle, src.offset,
                     src.size * src.itemsize)
        return out

    def copy(self):
        """A C-contiguous copy on the device."""
        from vmc.gpu.elemwise import copy
        return copy(self)

    def view(self, shape, strides, Py_ssize_t offset=0):
        """A view with new shape and byte strides, ``offset`` bytes further on
        (no check that it stays inside the allocation: the caller's job)."""
        cdef cnp.npy_intp d[MAXDIM]
        cdef cnp.npy_intp s[MAXDIM]
        cdef int i, nd = len(shape)
        if nd > MAXDIM or len(strides) != nd:
            raise ValueError(f"view: bad shape {shape} or strides {strides}")
        for i in range(nd):
            d[i], s[i] = shape[i], strides[i]
        return view(self, nd, d, s, self.offset + offset)

    def to_driver(self):
        """The driver's own array over this memory (pycuda GPUArray or pyopencl
        Array), sharing it: no copy."""
        from vmc.gpu import driver_array
        return driver_array(self)

    def __repr__(self):
        return (f"GpuArray(shape={self.shape}, dtype={self.dtype}, device={self.dev.name})")

    def __len__(self):
        if self.nd == 0:
            raise TypeError("len() of a 0-d GpuArray")
        return self.dims[0]

    def __getitem__(self, index):
        """Row ``i`` (``a[i]`` or ``a[i, ...]``) or rows ``a[start:stop]`` of the
        first dim, as a view; other indices go through compiled functions."""
        if isinstance(index, tuple) and len(index) == 2 and index[1] is Ellipsis:
            index = index[0]
        if self.nd == 0:
            raise IndexError("a 0-d GpuArray has no rows")
        if isinstance(index, slice):
            b, e, st = index.indices(self.dims[0])
            if st != 1:
                raise IndexError("GpuArray slices take step 1")
            return self.view((max(e - b, 0),) + self.shape[1:], self.strides,
                             b * self.strd[0])
        i = int(index)
        if not -self.dims[0] <= i < self.dims[0]:
            raise IndexError(f"row {i} of a GpuArray of shape {self.shape}")
        i = i + self.dims[0] if i < 0 else i
        return self.view(self.shape[1:], self.strides[1:], i * self.strd[0])

    def __bool__(self):
        """The truth of a one-element array (reads it: waits for the device)."""
        if self.size != 1:
            raise ValueError(f"the truth of a GpuArray of shape {self.shape} is ambiguous")
        return bool(self.get().reshape(()))


cdef GpuArray empty(Device dev, int nd, const cnp.npy_intp *dims, int typenum):
    """A new C-contiguous array from the device's pool."""
    cdef GpuArray a = GpuArray.__new__(GpuArray)
    cdef cnp.dtype dt = cnp.PyArray_DescrFromType(typenum)
    cdef Py_ssize_t s, n = 1
    cdef int i
    if nd > MAXDIM:
        raise ValueError(f"GpuArray of {nd} dims (at most {MAXDIM})")
    a.dev, a.nd, a.dtype, a.typenum, a.itemsize = dev, nd, dt, typenum, dt.itemsize
    s = dt.itemsize
    for i in range(nd - 1, -1, -1):
        if dims[i] < 0:
            raise ValueError(f"negative dimension {dims[i]}")
        a.dims[i], a.strd[i] = dims[i], s
        s *= dims[i] if dims[i] > 0 else 1
        n *= dims[i]
    a.size, a.offset = n, 0
    a.mem = dev.alloc(n * dt.itemsize)
    return a


cdef GpuArray view(GpuArray base, int nd, const cnp.npy_intp *dims,
                   const cnp.npy_intp *strides, Py_ssize_t offset):
    cdef GpuArray a = GpuArray.__new__(GpuArray)
    cdef Py_ssize_t n = 1
    cdef int i
    a.dev, a.mem, a.nd, a.dtype = base.dev, base.mem, nd, base.dtype
    a.typenum, a.itemsize, a.offset = base.typenum, base.itemsize, offset
    for i in range(nd):
        a.dims[i], a.strd[i] = dims[i], strides[i]
        n *= dims[i]
    a.size = n
    return a


# -- Python-level constructors ----------------------------------------------------------
def gpu_empty(Device dev, shape, dtype):
    cdef cnp.npy_intp d[MAXDIM]
    cdef int i, nd = len(shape)
    if nd > MAXDIM:
        raise ValueError(f"GpuArray of {nd} dims (at most {MAXDIM})")
    for i in range(nd):
        d[i] = shape[i]
    return empty(dev, nd, d, np.dtype(dtype).num)


def gpu_zeros(Device dev, shape, dtype):
    cdef GpuArray a = gpu_empty(dev, shape, dtype)
    dev.zero(a.mem.handle, 0, a.size * a.itemsize)
    return a


def to_device(Device dev, value, dtype=None):
    """A new GpuArray with the values of ``value`` (anything numpy takes)."""
    cdef cnp.ndarray h = np.ascontiguousarray(value, dtype=dtype)
    cdef GpuArray a
    if not h.dtype.isnative:
        h = h.astype(h.dtype.newbyteorder("="))
    a = empty(dev, h.ndim, cnp.PyArray_DIMS(h), h.dtype.num)
    dev.htod(a.mem.handle, 0, cnp.PyArray_DATA(h), h.nbytes)
    return a


def copy_into(GpuArray dst, GpuArray src):
    """Copy ``src`` into ``dst``: both C-contiguous, same dtype and size."""
    if not (dst.c_contig() and src.c_contig()) or dst.size != src.size \
            or dst.typenum != src.typenum:
        raise ValueError(f"copy_into: {src} into {dst}: both must be C-contiguous, "
                         "of one dtype and size")
    dst.dev.dtod(dst.mem.handle, dst.offset, src.mem.handle, src.offset,
                 src.size * src.itemsize)


def set_from_host(GpuArray dst, value):
    """Copy a host array of ``dst``'s shape and dtype into ``dst`` (C-contiguous)."""
    h = np.ascontiguousarray(value, dtype=dst.dtype)
    if h.shape != dst.shape or not dst.c_contig():
        raise ValueError(f"set_from_host: a value of shape {h.shape} into {dst}")
    dst.dev.htod(dst.mem.handle, dst.offset, cnp.PyArray_DATA(<cnp.ndarray>h), h.nbytes)


def handle_of(GpuArray a):
    """(buffer handle, byte offset) of an array, for the drivers' wrappers."""
    return int(a.mem.handle), int(a.offset)


# Graphs (captured work) and the event log of profiled launches.
include "_gpu_graphs.pxi"
