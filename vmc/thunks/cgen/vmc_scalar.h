/* vmc_scalar.h: scalar operations too long for a one-line template in
 * scalar_c.py, with numpy's semantics: floor division and remainder (Python's
 * sign convention, numpy's answers for division by zero and MIN / -1, which
 * C leaves undefined), integer power, lgamma without the global signgam.
 *
 * The GPU kernels include it too, after vmc/gpu/kernels/vmc_dialect.h (which
 * defines VMC_GPU, the types, the math names and VMC_DEVFN).
 */
#ifndef VMC_SCALAR_H
#define VMC_SCALAR_H
#ifndef VMC_GPU
#include <math.h>
#include "vmc_types.h"
#define VMC_DEVFN static inline
#endif

/* numpy's npy_divmod: floor(a / b) and a - floor(a / b) * b, computed from
 * fmod so the pair is exact; b == 0 gives a / b and fmod's nan. */
#define VMC_DEF_FDIVMOD(T, S)                                                   \
    VMC_DEVFN T vmc_floordiv##S(T a, T b) {                                     \
        if (!b) return a / b;                                                   \
        T mod = fmod##S(a, b), div = (a - mod) / b;                             \
        if (mod && ((b < 0) != (mod < 0))) div -= 1;                            \
        if (!div) return copysign##S((T)0, a / b);                              \
        T fl = floor##S(div);                                                   \
        return div - fl > (T)0.5 ? fl + 1 : fl;                                 \
    }                                                                           \
    VMC_DEVFN T vmc_mod##S(T a, T b) {                                          \
        T mod = fmod##S(a, b);                                                  \
        if (!b) return mod;                                                     \
        if (mod) { if ((b < 0) != (mod < 0)) mod += b; }                        \
        else mod = copysign##S((T)0, b);                                        \
        return mod;                                                             \
    }
VMC_DEF_FDIVMOD(double, )
VMC_DEF_FDIVMOD(float, f)

/* Signed: b == 0 gives 0, MIN // -1 gives MIN and MIN % -1 gives 0, like
 * numpy (which also warns; a kernel cannot). */
#define VMC_DEF_IDIVMOD(T, NAME, MIN)                                           \
    VMC_DEVFN T vmc_floordiv_##NAME(T a, T b) {                                 \
        if (b == 0) return 0;                                                   \
        if (b == -1) return (T)(0u - (npy_uint64)a);                            \
        T q = a / b;                                                            \
        return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;               \
    }                                                                           \
    VMC_DEVFN T vmc_mod_##NAME(T a, T b) {                                      \
        if (b == 0 || b == -1) return 0;                                        \
        T r = a % b;                                                            \
        return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;                    \
    }                                                                           \
    VMC_DEVFN T vmc_pow_##NAME(T a, T b) {                                      \
        if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;        \
        npy_uint64 r = 1, x = (npy_uint64)a;                                    \
        for (; b; b >>= 1, x *= x) if (b & 1) r *= x;                           \
        return (T)r;                                                            \
    }                                                                           \
    VMC_DEVFN T vmc_recip_##NAME(T a) { return a == 0 ? MIN : (T)(1 / a); }
#define VMC_DEF_UDIVMOD(T, NAME)                                                \
    VMC_DEVFN T vmc_floordiv_##NAME(T a, T b) { return b ? a / b : 0; }         \
    VMC_DEVFN T vmc_mod_##NAME(T a, T b) { return b ? a % b : 0; }              \
    VMC_DEVFN T vmc_pow_##NAME(T a, T b) {                                      \
        npy_uint64 r = 1, x = a;                                                \
        for (; b; b >>= 1, x *= x) if (b & 1) r *= x;                           \
        return (T)r;                                                            \
    }                                                                           \
    VMC_DEVFN T vmc_recip_##NAME(T a) { return a ? (T)(1 / a) : 0; }
VMC_DEF_IDIVMOD(npy_int8, int8, NPY_MIN_INT8)
VMC_DEF_IDIVMOD(npy_int16, int16, NPY_MIN_INT16)
VMC_DEF_IDIVMOD(npy_int32, int32, NPY_MIN_INT32)
VMC_DEF_IDIVMOD(npy_int64, int64, NPY_MIN_INT64)
VMC_DEF_UDIVMOD(npy_uint8, uint8)
VMC_DEF_UDIVMOD(npy_uint16, uint16)
VMC_DEF_UDIVMOD(npy_uint32, uint32)
VMC_DEF_UDIVMOD(npy_uint64, uint64)

/* lgamma_r: the plain lgamma writes the global signgam, a data race once
 * kernels run without the GIL (the dialect maps vmc_lgamma to the device's). */
#ifndef VMC_GPU
double lgamma_r(double, int *);
float lgammaf_r(float, int *);
static inline double vmc_lgamma(double x) { int s; return lgamma_r(x, &s); }
static inline float vmc_lgammaf(float x) { int s; return lgammaf_r(x, &s); }
#endif

#endif /* VMC_SCALAR_H */
