/* conv_direct.h: direct 2-d convolution kernels (no im2col) for _conv.pyx, for
 * the few-channel convolutions where they beat im2col and gemm (the rule and
 * its measurements are in _conv.pyx's _use_direct).
 *
 * Why vector code of our own: with a handful of input channels a gemm's inner
 * dimension (channels x kernel size) is short, so BLAS spends its time packing
 * and im2col writes a column matrix kh x kw times the input's size; a direct
 * loop keeps a tile of filters x vectors of outputs in registers while it
 * walks the kernel, reading the (padded) input in place.
 *
 * Each kernel exists twice on x86-64 with GCC: for the baseline (SSE2, the
 * ISA the extension is built for) and for AVX2 with FMA, chosen at run time
 * (__builtin_cpu_supports). The AVX2 variant contracts a*b + c into FMAs (a
 * convolution's sum has no one rounding to keep, unlike the elementwise
 * kernels). Only the horizontal loop is vectorized, so the stride along
 * columns must be 1 (the caller's rule). */
#ifndef VMC_CONV_DIRECT_H
#define VMC_CONV_DIRECT_H
#include <stddef.h>
#include <string.h>

#define CD_SLACK 64     /* elements the kernels may read past the padded input */

#define CD_CAT2(a, b) a##_##b
#define CD_CAT(a, b) CD_CAT2(a, b)

#define CD_T float
#define CD_LANES (16 / 4)
#define CD_FN(name) CD_CAT(vmc__cd_base_f32, name)
#include "conv_direct_body.h"
#undef CD_T
#undef CD_LANES
#undef CD_FN
#define CD_T double
#define CD_LANES (16 / 8)
#define CD_FN(name) CD_CAT(vmc__cd_base_f64, name)
#include "conv_direct_body.h"
#undef CD_T
#undef CD_LANES
#undef CD_FN

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CD_HAVE_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#pragma GCC optimize("fp-contract=fast")
#define CD_T float
#define CD_LANES (32 / 4)
#define CD_FN(name) CD_CAT(vmc__cd_avx2_f32, name)
#include "conv_direct_body.h"
#undef CD_T
#undef CD_LANES
#undef CD_FN
#define CD_T double
#define CD_LANES (32 / 8)
#define CD_FN(name) CD_CAT(vmc__cd_avx2_f64, name)
#include "conv_direct_body.h"
#undef CD_T
#undef CD_LANES
#undef CD_FN
#pragma GCC pop_options
#endif

/* 2 when the AVX2+FMA kernels run, 0 for the baseline ones. */
static int vmc__cd_isa = -1;

static int vmc_conv_direct_isa(void)
{
#ifdef CD_HAVE_AVX2
    if (vmc__cd_isa < 0)
        vmc__cd_isa = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 2 : 0;
    return vmc__cd_isa;
#else
    return 0;
#endif
}

/* Run the baseline kernels even where AVX2 is there (tests and measurements
 * of both variants on one machine): isa 0; or back to the CPU's best: -1. */
static void vmc_conv_direct_set_isa(int isa)
{
    vmc__cd_isa = isa;
}

#ifdef CD_HAVE_AVX2
#define CD_DISPATCH(kind, t, ...) \
    (vmc_conv_direct_isa() == 2 ? vmc__cd_avx2_##t##_##kind(__VA_ARGS__) \
                                : vmc__cd_base_##t##_##kind(__VA_ARGS__))
#else
#define CD_DISPATCH(kind, t, ...) vmc__cd_base_##t##_##kind(__VA_ARGS__)
#endif

#define CD_ARGS(T, W) const T *xp, ptrdiff_t hp, ptrdiff_t wp, const T *W, ptrdiff_t nf, \
    ptrdiff_t cg, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t dh, ptrdiff_t dw, \
    T *out, ptrdiff_t oh, ptrdiff_t ow
#define CD_PASS(W) xp, hp, wp, W, nf, cg, kh, kw, sh, dh, dw, out, oh, ow

static void vmc_conv_direct_fwd_f32(CD_ARGS(float, w)) { CD_DISPATCH(fwd, f32, CD_PASS(w)); }
static void vmc_conv_direct_fwd_f64(CD_ARGS(double, w)) { CD_DISPATCH(fwd, f64, CD_PASS(w)); }
static void vmc_conv_direct_gw_f32(CD_ARGS(float, top)) { CD_DISPATCH(gw, f32, CD_PASS(top)); }
static void vmc_conv_direct_gw_f64(CD_ARGS(double, top)) { CD_DISPATCH(gw, f64, CD_PASS(top)); }

#endif
