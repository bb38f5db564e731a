# The shared core of vmc's GPU drivers (CUDA and OpenCL): devices, memory,
# arrays and kernel launches through the drivers' C entry points. The
# driver-specific part is one branch per entry point (see _gpu_api.h); the
# GPU thunks (_gthunks.pyx) are written once against these declarations.
cimport numpy as cnp
from libc.stdint cimport uint64_t

cdef extern from "_gpu_api.h":
    enum: VMC_MAX_ARGS
    ctypedef struct vmc_args:
        int n
        size_t used
        void **ptr                    # (arrays in C) pointer to each value
        size_t *size                  # and its size
    int vmc_push(vmc_args *a, const void *v, size_t n) nogil

cdef enum:
    CUDA = 1
    OPENCL = 2
    MAXDIM = 32


cdef class Device:
    cdef readonly int kind            # CUDA or OPENCL
    cdef readonly str name            # "cuda:0", "opencl:0:0"
    cdef readonly str description     # the device's own name
    cdef void *context                # CUcontext / cl_context
    cdef void *stream                 # CUstream / cl_command_queue (in order)
    cdef dict pool                    # bucket bytes -> [handles] freed for reuse
    cdef readonly size_t in_use       # bytes of live allocations (buckets)
    cdef readonly size_t cached       # bytes held in the pool
    cdef readonly size_t total_mem    # the device's global memory
    cdef readonly size_t max_alloc    # the largest single allocation
    cdef public object keep           # driver objects that own context and queue
    cdef public list capture          # allocations made while a graph is captured
    cdef public object profiler       # an EventLog while profiling, else None
    cdef public object err_buf        # int64 flags kernels set on bad input (lazily made)
    cdef public list err_labels       # what each flag slot reports
    cdef public bint err_pending      # a flagging kernel ran since the last check
    cdef public list recording        # OpenCL: the commands of a graph being captured
    cdef int activate(self) except -1
    cdef Allocation alloc(self, size_t nbytes)
    cdef uint64_t _new_block(self, size_t b, size_t nbytes) except? 0
    cdef void release(self, uint64_t handle, size_t bucket) noexcept
    cdef int launch(self, Kernel k, size_t groups, size_t local, vmc_args *a) except -1
    cdef int htod(self, uint64_t dst, size_t off, const void *src, size_t n) except -1
    cdef int dtoh(self, void *dst, uint64_t src, size_t off, size_t n) except -1
    cdef int dtod(self, uint64_t dst, size_t doff, uint64_t src, size_t soff,
                  size_t n) except -1
    cdef int zero(self, uint64_t dst, size_t off, size_t n) except -1
    cdef int sync(self) except -1


cdef class Graph:
    cdef readonly Device dev
    cdef void *handle                 # CUDA: the instantiated graph
    cdef list commands                # OpenCL: the recorded launches and copies
    cdef readonly list pinned         # allocations the graph's work uses


cdef class EventLog:
    cdef public object current
    cdef public dict totals
    cdef list pending
    cdef void *start
    cdef int before(self, Device dev) except -1
    cdef int after(self, Device dev, void *ev) except -1


cdef class Allocation:
    cdef readonly Device dev
    cdef readonly uint64_t handle     # CUdeviceptr / cl_mem
    cdef readonly size_t nbytes       # its bucket's size


cdef class GpuArray:
    cdef readonly Device dev
    cdef readonly Allocation mem      # the memory it lives in
    cdef readonly Py_ssize_t offset   # bytes from the allocation's start
    cdef readonly int nd
    cdef cnp.npy_intp dims[MAXDIM]
    cdef cnp.npy_intp strd[MAXDIM]    # in bytes, as numpy's
    cdef readonly object dtype
    cdef readonly int typenum
    cdef readonly int itemsize
    cdef readonly Py_ssize_t size
    cdef bint c_contig(self) noexcept
    cdef Py_ssize_t extent(self) noexcept


cdef class Kernel:
    cdef readonly Device dev
    cdef void *handle                 # CUfunction / cl_kernel
    cdef readonly str name
    cdef readonly size_t local        # the work-group size it is launched with
    cdef object keep


cdef GpuArray empty(Device dev, int nd, const cnp.npy_intp *dims, int typenum)
cdef GpuArray view(GpuArray base, int nd, const cnp.npy_intp *dims,
                   const cnp.npy_intp *strides, Py_ssize_t offset)
cdef int push_array(vmc_args *a, GpuArray x) except -1
cdef int push_i64(vmc_args *a, long long v) except -1
