/* _gpu_api.h: the few CUDA driver and OpenCL entry points vmc's GPU layer calls,
 * declared without the vendors' headers (neither needs to be installed to build
 * vmc). _gpu.pyx loads them at run time with dlopen/dlsym from the libraries
 * pycuda and pyopencl have already loaded (libcuda.so.1, libOpenCL.so.1), so the
 * VM launches kernels through the drivers' C entry points, no Python per launch.
 *
 * Signatures follow cuda.h (the exported, versioned names: cuMemAlloc_v2, ...)
 * and CL/cl.h (OpenCL 1.2).
 */
#ifndef VMC_GPU_API_H
#define VMC_GPU_API_H
#include <stddef.h>
#include <stdint.h>
#include <dlfcn.h>

/* ------------------------------------------------------------- CUDA driver */
typedef int CUresult;
typedef uint64_t CUdeviceptr;
typedef void *CUstream;
typedef void *CUfunction;
typedef void *CUmodule;
typedef void *CUevent;
typedef void *CUcontext;
typedef void *CUgraph;
typedef void *CUgraphExec;
#define VMC_CUDA_SUCCESS 0
#define VMC_CUDA_ERROR_OUT_OF_MEMORY 2
#define VMC_CU_STREAM_NON_BLOCKING 1
#define VMC_CU_EVENT_DEFAULT 0
#define VMC_CU_STREAM_CAPTURE_MODE_RELAXED 2

typedef struct {
    CUresult (*MemAlloc)(CUdeviceptr *p, size_t n);
    CUresult (*MemFree)(CUdeviceptr p);
    CUresult (*MemcpyHtoDAsync)(CUdeviceptr dst, const void *src, size_t n, CUstream s);
    CUresult (*MemcpyDtoHAsync)(void *dst, CUdeviceptr src, size_t n, CUstream s);
    CUresult (*MemcpyDtoDAsync)(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s);
    CUresult (*MemsetD8Async)(CUdeviceptr dst, unsigned char v, size_t n, CUstream s);
    CUresult (*LaunchKernel)(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                             unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                             CUstream s, void **params, void **extra);
    CUresult (*StreamCreate)(CUstream *s, unsigned flags);
    CUresult (*StreamSynchronize)(CUstream s);
    CUresult (*MemGetInfo)(size_t *free, size_t *total);
    CUresult (*GetErrorString)(CUresult e, const char **s);
    CUresult (*ModuleLoadData)(CUmodule *m, const void *image);
    CUresult (*ModuleGetFunction)(CUfunction *f, CUmodule m, const char *name);
    CUresult (*CtxGetCurrent)(CUcontext *c);
    CUresult (*CtxSetCurrent)(CUcontext c);
    CUresult (*EventCreate)(CUevent *e, unsigned flags);
    CUresult (*EventRecord)(CUevent e, CUstream s);
    CUresult (*EventSynchronize)(CUevent e);
    CUresult (*EventElapsedTime)(float *ms, CUevent a, CUevent b);
    CUresult (*EventDestroy)(CUevent e);
    CUresult (*StreamBeginCapture)(CUstream s, int mode);
    CUresult (*StreamEndCapture)(CUstream s, CUgraph *g);
    CUresult (*GraphInstantiateWithFlags)(CUgraphExec *e, CUgraph g, unsigned long long fl);
    CUresult (*GraphLaunch)(CUgraphExec e, CUstream s);
    CUresult (*GraphExecDestroy)(CUgraphExec e);
    CUresult (*GraphDestroy)(CUgraph g);
} vmc_cuda_api;

/* The exported symbol of each field, in order. */
static const char *const VMC_CUDA_SYMBOLS[] = {
    "cuMemAlloc_v2", "cuMemFree_v2", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2",
    "cuMemcpyDtoDAsync_v2", "cuMemsetD8Async", "cuLaunchKernel", "cuStreamCreate",
    "cuStreamSynchronize", "cuMemGetInfo_v2", "cuGetErrorString", "cuModuleLoadData",
    "cuModuleGetFunction", "cuCtxGetCurrent", "cuCtxSetCurrent", "cuEventCreate",
    "cuEventRecord", "cuEventSynchronize", "cuEventElapsedTime", "cuEventDestroy_v2",
    "cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphInstantiateWithFlags",
    "cuGraphLaunch", "cuGraphExecDestroy", "cuGraphDestroy", NULL};

/* ------------------------------------------------------------------ OpenCL */
typedef int32_t cl_int;
typedef uint32_t cl_uint;
typedef uint64_t cl_ulong;
typedef void *cl_mem;
typedef void *cl_kernel;
typedef void *cl_context;
typedef void *cl_command_queue;
typedef void *cl_event;
#define VMC_CL_SUCCESS 0
#define VMC_CL_MEM_READ_WRITE 1
#define VMC_CL_PROFILING_COMMAND_START 0x1282
#define VMC_CL_PROFILING_COMMAND_END 0x1283

typedef struct {
    cl_mem (*CreateBuffer)(cl_context c, cl_ulong flags, size_t n, void *host, cl_int *err);
    cl_int (*ReleaseMemObject)(cl_mem m);
    cl_int (*SetKernelArg)(cl_kernel k, cl_uint i, size_t n, const void *value);
    cl_int (*EnqueueNDRangeKernel)(cl_command_queue q, cl_kernel k, cl_uint dim,
                                   const size_t *offset, const size_t *global,
                                   const size_t *local, cl_uint nwait, const cl_event *wait,
                                   cl_event *ev);
    cl_int (*EnqueueReadBuffer)(cl_command_queue q, cl_mem m, cl_uint blocking, size_t off,
                                size_t n, void *dst, cl_uint nwait, const cl_event *wait,
                                cl_event *ev);
    cl_int (*EnqueueWriteBuffer)(cl_command_queue q, cl_mem m, cl_uint blocking, size_t off,
                                 size_t n, const void *src, cl_uint nwait,
                                 const cl_event *wait, cl_event *ev);
    cl_int (*EnqueueCopyBuffer)(cl_command_queue q, cl_mem src, cl_mem dst, size_t soff,
                                size_t doff, size_t n, cl_uint nwait, const cl_event *wait,
                                cl_event *ev);
    cl_int (*EnqueueFillBuffer)(cl_command_queue q, cl_mem m, const void *pattern,
                                size_t psize, size_t off, size_t n, cl_uint nwait,
                                const cl_event *wait, cl_event *ev);
    cl_int (*Finish)(cl_command_queue q);
    cl_int (*GetEventProfilingInfo)(cl_event e, cl_uint what, size_t n, void *value,
                                    size_t *ret);
    cl_int (*ReleaseEvent)(cl_event e);
    cl_int (*WaitForEvents)(cl_uint n, const cl_event *evs);
} vmc_cl_api;

static const char *const VMC_CL_SYMBOLS[] = {
    "clCreateBuffer", "clReleaseMemObject", "clSetKernelArg", "clEnqueueNDRangeKernel",
    "clEnqueueReadBuffer", "clEnqueueWriteBuffer", "clEnqueueCopyBuffer",
    "clEnqueueFillBuffer", "clFinish", "clGetEventProfilingInfo", "clReleaseEvent",
    "clWaitForEvents", NULL};

/* Fill an api struct (an array of function pointers) from a library; the name
 * of the first missing symbol, or NULL when all were found. */
static inline const char *vmc_load_api(const char *lib, const char *const *names, void **fns) {
    void *h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
    if (!h) return lib;
    for (int i = 0; names[i]; i++) {
        fns[i] = dlsym(h, names[i]);
        if (!fns[i]) return names[i];
    }
    return NULL;
}

/* Kernel arguments, packed once for both drivers: cuLaunchKernel takes an array
 * of pointers to the values, clSetKernelArg each value's pointer and size.
 * A device buffer is one 8-byte handle in both (CUdeviceptr, cl_mem). */
#define VMC_MAX_ARGS 160
typedef struct {
    int n;
    size_t used;
    void *ptr[VMC_MAX_ARGS];
    size_t size[VMC_MAX_ARGS];
    _Alignas(8) char data[VMC_MAX_ARGS * 8];
} vmc_args;

static inline int vmc_push(vmc_args *a, const void *v, size_t n) {
    if (a->n >= VMC_MAX_ARGS || a->used + 8 > sizeof(a->data)) return -1;
    char *dst = a->data + a->used;
    for (size_t i = 0; i < n; i++) dst[i] = ((const char *)v)[i];
    a->ptr[a->n] = dst;
    a->size[a->n] = n;
    a->n++;
    a->used += 8;            /* every slot 8-aligned */
    return 0;
}
#endif /* VMC_GPU_API_H */
