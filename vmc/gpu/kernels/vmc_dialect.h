/* vmc_dialect.h: the one kernel dialect of vmc's GPU kernels.
 *
 * Every GPU kernel of vmc is written once against these names and compiled
 * as CUDA C++ (NVRTC, for device=cuda) or as OpenCL C (device=opencl), as
 * Theano's libgpuarray did:
 *
 *   KERNEL          a kernel entry point (extern "C" __global__ / __kernel)
 *   GLOBAL_MEM      a pointer into device memory (nothing / __global)
 *   LOCAL_MEM       a group-shared array declared in a kernel (__shared__ / __local)
 *   LID_0 LDIM_0    the work-item's index in its group, the group's size
 *   GID_0 GDIM_0    the group's index, the number of groups
 *   local_barrier() a barrier of the group over local memory
 *   VMC_DEVFN       a helper function on the device
 *   npy_*           numpy's scalar types, with numpy's sizes
 *   C99 math names  expf, sqrt, ... (OpenCL's built-ins are overloaded, so the
 *                   float names map onto them); INFINITY, NAN
 *
 * Kernels launch on one dimension: LDIM_0 work-items per group, GDIM_0 groups,
 * loops stride over the whole range (vmc/gpu/_gpu.pyx launches them).
 */
#ifndef VMC_DIALECT_H
#define VMC_DIALECT_H

#ifdef __OPENCL_VERSION__
/* ------------------------------------------------------------------ OpenCL */
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#define KERNEL __kernel
#define GLOBAL_MEM __global
#define LOCAL_MEM __local
#define LID_0 ((long)get_local_id(0))
#define LDIM_0 ((long)get_local_size(0))
#define GID_0 ((long)get_group_id(0))
#define GDIM_0 ((long)get_num_groups(0))
#define local_barrier() barrier(CLK_LOCAL_MEM_FENCE)
#define VMC_DEVFN static inline
typedef char npy_int8;
typedef short npy_int16;
typedef int npy_int32;
typedef long npy_int64;
typedef uchar npy_uint8;
typedef ushort npy_uint16;
typedef uint npy_uint32;
typedef ulong npy_uint64;
typedef uchar npy_bool;
typedef float npy_float32;
typedef double npy_float64;
typedef long npy_intp;
#define NPY_MIN_INT8 CHAR_MIN
#define NPY_MIN_INT16 SHRT_MIN
#define NPY_MIN_INT32 INT_MIN
#define NPY_MIN_INT64 LONG_MIN
/* The C99 float names, onto OpenCL's overloaded built-ins. */
#define fabsf fabs
#define sqrtf sqrt
#define floorf floor
#define ceilf ceil
#define rintf rint
#define powf pow
#define fmodf fmod
#define copysignf copysign
#define expf exp
#define expm1f expm1
#define logf log
#define log1pf log1p
#define log2f log2
#define log10f log10
#define tanhf tanh
#define sinf sin
#define cosf cos
#define tanf tan
#define asinf asin
#define acosf acos
#define atanf atan
#define atan2f atan2
#define sinhf sinh
#define coshf cosh
#define asinhf asinh
#define erff erf
#define erfcf erfc
#define lgammaf lgamma
#define fmaxf fmax
#define fminf fmin
#define VMC_FLOAT_BITS(x) as_uint(x)
#define VMC_DOUBLE_BITS(x) as_ulong(x)
/* Rounded once each, never contracted into an fma (a module that needs this
 * says #pragma OPENCL FP_CONTRACT OFF): results equal numpy's bit for bit. */
#define VMC_FADD_RN(a, b) ((a) + (b))
#define VMC_FMUL_RN(a, b) ((a) * (b))
#define VMC_DADD_RN(a, b) ((a) + (b))
#define VMC_DMUL_RN(a, b) ((a) * (b))

#else
/* -------------------------------------------------------------------- CUDA */
#define KERNEL extern "C" __global__
#define GLOBAL_MEM
#define LOCAL_MEM __shared__
#define LID_0 ((long long)threadIdx.x)
#define LDIM_0 ((long long)blockDim.x)
#define GID_0 ((long long)blockIdx.x)
#define GDIM_0 ((long long)gridDim.x)
#define local_barrier() __syncthreads()
#define VMC_DEVFN __device__ __forceinline__
typedef signed char npy_int8;
typedef short npy_int16;
typedef int npy_int32;
typedef long long npy_int64;
typedef unsigned char npy_uint8;
typedef unsigned short npy_uint16;
typedef unsigned int npy_uint32;
typedef unsigned long long npy_uint64;
typedef unsigned char npy_bool;
typedef float npy_float32;
typedef double npy_float64;
typedef long long npy_intp;
#define NPY_MIN_INT8 (-128)
#define NPY_MIN_INT16 (-32768)
#define NPY_MIN_INT32 (-2147483647 - 1)
#define NPY_MIN_INT64 (-9223372036854775807LL - 1)
#define INFINITY __int_as_float(0x7f800000)
#define NAN __int_as_float(0x7fffffff)
#define VMC_FLOAT_BITS(x) __float_as_uint(x)
#define VMC_DOUBLE_BITS(x) ((unsigned long long)__double_as_longlong(x))
#define VMC_FADD_RN(a, b) __fadd_rn((a), (b))
#define VMC_FMUL_RN(a, b) __fmul_rn((a), (b))
#define VMC_DADD_RN(a, b) __dadd_rn((a), (b))
#define VMC_DMUL_RN(a, b) __dmul_rn((a), (b))
#endif

typedef npy_int64 vmc_long;     /* indices, sizes and strides in kernels */
#define VMC_GPU 1

/* ------------------------------------------------------- shared device math */
/* The names scalar_c.py's templates call (vmc_math.h on the CPU), here on the
 * device's own libm; same semantics, the device's accuracy (CUDA: <= 2 ulp for
 * float32 exp, log, tanh; OpenCL: its spec's bounds). */
#define VMC_GPU_UNARY(name, fn)                                                  \
    VMC_DEVFN double name(double x) { return fn(x); }                           \
    VMC_DEVFN float name##f(float x) { return fn##f(x); }
VMC_GPU_UNARY(vmc_exp, exp)
VMC_GPU_UNARY(vmc_expm1, expm1)
VMC_GPU_UNARY(vmc_log, log)
VMC_GPU_UNARY(vmc_log1p, log1p)
VMC_GPU_UNARY(vmc_log2, log2)
VMC_GPU_UNARY(vmc_log10, log10)
VMC_GPU_UNARY(vmc_tanh, tanh)
VMC_GPU_UNARY(vmc_erf, erf)
VMC_GPU_UNARY(vmc_sin, sin)
VMC_GPU_UNARY(vmc_cos, cos)
VMC_GPU_UNARY(vmc_lgamma, lgamma)

/* 1/(1+exp(-x)) for x >= 0, exp(x)/(1+exp(x)) below (as vmc_math.h). */
VMC_DEVFN double vmc_sigmoid(double x) {
    double e = exp(-fabs(x)), s = 1.0 / (1.0 + e);
    return x >= 0 ? s : e * s;
}
VMC_DEVFN float vmc_sigmoidf(float x) {
    float e = expf(-fabsf(x)), s = 1.0f / (1.0f + e);
    return x >= 0 ? s : e * s;
}
/* max(x, 0) + log1p(exp(-|x|)): nothing overflows. */
VMC_DEVFN double vmc_softplus(double x) { return (x >= 0 ? x : 0.0) + log1p(exp(-fabs(x))); }
VMC_DEVFN float vmc_softplusf(float x) { return (x >= 0 ? x : 0.0f) + log1pf(expf(-fabsf(x))); }

/* ------------------------------------------------------------ atomic adds */
/* VMC_ATOMIC_ADD_<f32|f64|i32|i64>(pointer, value): repeated indices of an
 * inc_subtensor add up. OpenCL 1.2 has no float atomics: a compare-and-swap
 * loop on the bits (64-bit: cl_khr_int64_base_atomics). */
#ifdef __OPENCL_VERSION__
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable
VMC_DEVFN void vmc_atomic_add_f32(volatile GLOBAL_MEM float *p, float v) {
    uint o = as_uint(*p);
    for (;;) {
        const uint seen = atomic_cmpxchg((volatile GLOBAL_MEM uint *)p, o,
                                         as_uint(as_float(o) + v));
        if (seen == o) break;
        o = seen;
    }
}
VMC_DEVFN void vmc_atomic_add_f64(volatile GLOBAL_MEM double *p, double v) {
    ulong o = as_ulong(*p);
    for (;;) {
        const ulong seen = atom_cmpxchg((volatile GLOBAL_MEM ulong *)p, o,
                                        as_ulong(as_double(o) + v));
        if (seen == o) break;
        o = seen;
    }
}
#define VMC_ATOMIC_ADD_f32(p, v) vmc_atomic_add_f32((p), (v))
#define VMC_ATOMIC_ADD_f64(p, v) vmc_atomic_add_f64((p), (v))
#define VMC_ATOMIC_ADD_i32(p, v) atomic_add((volatile GLOBAL_MEM int *)(p), (v))
#define VMC_ATOMIC_ADD_i64(p, v) atom_add((volatile GLOBAL_MEM long *)(p), (v))
#else
#define VMC_ATOMIC_ADD_f32(p, v) atomicAdd((p), (v))
#define VMC_ATOMIC_ADD_f64(p, v) atomicAdd((p), (v))
#define VMC_ATOMIC_ADD_i32(p, v) atomicAdd((p), (v))
#define VMC_ATOMIC_ADD_i64(p, v) \
    atomicAdd((unsigned long long *)(p), (unsigned long long)(v))
#endif

#endif /* VMC_DIALECT_H */
