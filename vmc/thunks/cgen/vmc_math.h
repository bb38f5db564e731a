/* vmc_math.h: vectorizable elementary functions for float32 and float64.
 *
 * Pure C99, header only, every function `static inline`. They are written
 * for GCC's auto-vectorizer: no libm calls, no table lookups (gathers are
 * slow or emulated on AVX2), no data-dependent branches; special inputs are
 * handled by computing the general formula on a clamped argument and then
 * selecting (`c ? a : b` on values already computed becomes a blend).
 * Integer work on float bits uses only what AVX2 has: 64-bit add, and, or
 * and logical shifts; int64<->double conversion (AVX-512 only) is replaced by
 * the 0x1.8p52 "shift" trick, which leaves round(x) in the low mantissa bits.
 *
 * Accuracy target: within 4 ulp of a correctly rounded result over the
 * whole range, inf, nan, signed zeros and subnormals included, with or
 * without FMA and with -ffp-contract=off (see tests/thunks/test_vmc_math.py).
 * Compile with -fno-math-errno (lets sqrt/floor inline) and never with
 * -ffast-math (it would break the nan and rounding tricks below).
 *
 * float32 exp, expm1, tanh and sigmoid run in float32 (8 lanes with AVX2);
 * the other float32 functions round the float64 result, which is exact to
 * within 0.5 ulp + 2^-29 and half as wide.
 *
 * Fast variants: `vmc_exp_fast`, `vmc_sigmoid_fast`, `vmc_softplus_fast`
 * (results must be normal: valid where !vmc_exp_big(x)) and `vmc_sin_fast`,
 * `vmc_cos_fast` (valid where !vmc_trig_big(x), |x| <= 1.5e6; sin and cos
 * reduce by pi/2 in four Cody-Waite parts). A vectorized loop calls the
 * _fast form, ORs the predicate, and recomputes the rare flagged lanes with
 * the full-range form (branch-free for exp; libm's Payne-Hanek for sin/cos).
 * The full-range forms are branch-free too, except sin/cos beyond the limit.
 *
 * Coefficients: see fit_coeffs.py (Chebyshev fits at 50 digits).
 */
#ifndef VMC_MATH_H
#define VMC_MATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

/* The public functions: inlined, or with VMC_OUTLINE_MATH (elemwise.py sets
 * it for modules with many calls) compiled once out of line with vector
 * clones that vectorized loops call (GCC's simd attribute): the same
 * operations in the same order, so the same results, for a fraction of the
 * compile time of inlining each call. */
#if defined(VMC_OUTLINE_MATH) && defined(__GNUC__) && !defined(__clang__)
#define VMC_MATHFN __attribute__((simd("notinbranch"), noinline)) static
#else
#define VMC_MATHFN static inline
#endif

#ifdef __FMA__
#define VMC_FMA(a, b, c) __builtin_fma((a), (b), (c))
#define VMC_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define VMC_FMA(a, b, c) ((a) * (b) + (c))
#define VMC_FMAF(a, b, c) ((a) * (b) + (c))
#endif

static inline uint64_t vmc__u64(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double vmc__f64(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
static inline uint32_t vmc__u32(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float vmc__f32(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/* Horner; n is a constant after inlining, so GCC unrolls it completely. */
static inline double vmc__poly(const double *c, int n, double x) {
    double p = c[n - 1];
    for (int i = n - 2; i >= 0; i--) p = VMC_FMA(p, x, c[i]);
    return p;
}
static inline float vmc__polyf(const float *c, int n, float x) {
    float p = c[n - 1];
    for (int i = n - 2; i >= 0; i--) p = VMC_FMAF(p, x, c[i]);
    return p;
}

#define VMC_SHIFT 0x1.8p52           /* x + SHIFT - SHIFT == rint(x) for |x| < 2^51 */
#define VMC_SHIFTF 0x1.8p23f
#define VMC_INV_LN2 0x1.71547652b82fep+0
#define VMC_LN2_HI 0x1.62e42fee00000p-1  /* 32 trailing zero bits: k*LN2_HI exact */
#define VMC_LN2_LO 0x1.a39ef35793c76p-33
#define VMC_LN2F_HI 0x1.62e4p-1f          /* 15 significant bits: k*LN2F_HI exact */
#define VMC_LN2F_LO 0x1.7f7d1cp-20f
#define VMC_INV_LN2F 0x1.715476p+0f

/* max abs error 1.38e-16 */
static const double VMC_EM1_P[10] = {0x1.0000000000001p-1, 0x1.5555555555556p-3, 0x1.555555555394cp-5, 0x1.1111111110871p-7, 0x1.6c16c17a1c437p-10, 0x1.a01a01a8ba744p-13, 0x1.a019b31890abfp-16, 0x1.71de0a0471800p-19, 0x1.289876a2dbdc0p-22, 0x1.af4134720f354p-26};
/* max abs error 3.75e-17 */
static const double VMC_LOG_Q[8] = {0x1.5555555555555p-1, 0x1.9999999999a52p-2, 0x1.2492492472dbfp-2, 0x1.c71c72083ff48p-3, 0x1.745cf62b393bfp-3, 0x1.3b1cce9a272eep-3, 0x1.0faebade0bab8p-3, 0x1.0ca79b3eade12p-3};
/* max abs error 9.38e-18 */
static const double VMC_SIN_S[7] = {-0x1.5555555555555p-3, 0x1.1111111111110p-7, -0x1.a01a01a019881p-13, 0x1.71de3a544a89fp-19, -0x1.ae6453ecdcd92p-26, 0x1.6121614ce309ep-33, -0x1.ab0677caffaf3p-41};
/* max abs error 2.31e-18 */
static const double VMC_COS_C[7] = {0x1.5555555555555p-5, -0x1.6c16c16c16c16p-10, 0x1.a01a01a019cb9p-16, -0x1.27e4fb7709081p-22, 0x1.1eed8ddabb3c0p-29, -0x1.93949f9713b1ap-37, 0x1.ab68e984a643fp-45};
/* max abs error 2.31e-17 */
static const double VMC_ERF_E[17] = {0x1.20dd750429b6dp+0, -0x1.812746b0379e7p-2, 0x1.ce2f21a042be2p-4, -0x1.b82ce31288b51p-6, 0x1.565bcd0e6a53fp-8, -0x1.c02db40040b85p-11, 0x1.f9a326f9b8973p-14, -0x1.f4d25c3e0b274p-17, 0x1.b9e6c9dc37a12p-20, -0x1.5f742ebe77d1dp-23, 0x1.fcc570ee3a0cbp-27, -0x1.51d7044784775p-30, 0x1.9e68bd8892e4cp-34, -0x1.d81b8e70a8d8dp-38, 0x1.f4320bac74b6ap-42, -0x1.deeb4c02982e8p-46, 0x1.4f1b050e26e6bp-50};
/* erfc tail piece 0: u = 1/|x| in [0.166667, 0.4], t = (u - 0.2833333333333333) * 8.403361344537815 */
/* max abs error 9.33e-18 */
static const double VMC_ERF_G0[17] = {0x1.3b922e3d936d3p-3, 0x1.ee473686e0e6bp-5, -0x1.3df69137ad7bep-9, -0x1.2f0ffc2c4a001p-13, 0x1.467ebf8ffd1fap-15, -0x1.865250f197881p-19, -0x1.0fa90005d8213p-22, 0x1.ba1a90e7c98b1p-24, -0x1.c02daa8c9fe93p-27, -0x1.ae6de45389751p-34, 0x1.b4baed76a996ep-32, -0x1.8173e9e3b85a1p-34, 0x1.155d4106ca9b7p-37, 0x1.3b93f7404a8d7p-40, -0x1.4af59b6aa6149p-41, 0x1.d1844da3732a6p-44, -0x1.37110dec9b7fbp-48};
#define VMC_ERF_M0 0x1.2222222222222p-2
#define VMC_ERF_IH0 0x1.0ce8560ce8561p+3
/* erfc tail piece 1: u = 1/|x| in [0.4, 0.666667], t = (u - 0.5333333333333333) * 7.352941176470588 */
/* max abs error 2.54e-17 */
static const double VMC_ERF_G1[17] = {0x1.13e5743b60480p-2, 0x1.ce3f7658d130cp-5, -0x1.bb44dc952a84ep-9, 0x1.42247b71ab825p-14, 0x1.24e307b3a3e8fp-16, -0x1.d631d586466e9p-19, 0x1.9093662a73fb6p-22, -0x1.2bdc607653366p-26, -0x1.7085fb031db6ep-29, 0x1.e4c4178c6c64dp-31, -0x1.3d062ee585be9p-33, 0x1.0e2156a90c6b5p-36, -0x1.4d9de417b2cf8p-41, -0x1.b70a1df23b29bp-43, 0x1.1c98c5e663e19p-44, -0x1.b3cc955f1ff36p-47, 0x1.abd9d1b65ab35p-50};
#define VMC_ERF_M1 0x1.1111111111111p-1
#define VMC_ERF_IH1 0x1.d696969696969p+2
/* erfc tail piece 2: u = 1/|x| in [0.666667, 1.18519], t = (u - 0.9259259259259259) * 3.7815126050420167 */
/* max abs error 6.55e-18 */
static const double VMC_ERF_G2[17] = {0x1.a06f8bd22f3c8p-2, 0x1.3bccdf7ef0df1p-4, -0x1.275015a722e4cp-7, 0x1.c31ce44718313p-11, -0x1.654a55789bbffp-15, -0x1.f60d44ecac255p-18, 0x1.9fdcffe279f58p-19, -0x1.758d2880705f3p-21, 0x1.0167e84c92d2dp-23, -0x1.1064a4d2aff06p-26, 0x1.400358f9b26a9p-30, 0x1.6df3d5f7a1b97p-33, -0x1.b8c8874cf5889p-34, 0x1.fe1e2df584cf4p-36, -0x1.cf51514262c02p-38, 0x1.714f54067e1ecp-40, -0x1.a08779856c4a1p-43};
#define VMC_ERF_M2 0x1.da12f684bda13p-1
#define VMC_ERF_IH2 0x1.e4089ae4089aep+1
/* max abs error 7.3e-08 */
static const float VMC_EM1F_P[5] = {0x1.0000000000000p-1f, 0x1.5554d40000000p-3f, 0x1.5555140000000p-5f, 0x1.1215820000000p-7f, 0x1.6d1b1c0000000p-10f};


/* 2^k for an integer-valued double k in [-1022, 1023], built from its bits. */
static inline double vmc__pow2i(double k) {
    return vmc__f64((vmc__u64(k + VMC_SHIFT) + 1023) << 52);
}
static inline float vmc__pow2if(float k) {
    return vmc__f32((vmc__u32(k + VMC_SHIFTF) + 127) << 23);
}

/* ---------------------------------------------------------------- exp */

/* x = k ln2 + r, |r| <= ln2/2: t = x/ln2 + SHIFT holds k in its low bits,
 * r is computed exactly up to the last rounding (k*LN2_HI is exact), and
 * em1(r) = r + r^2 P(r) ~ expm1(r). */
static inline double vmc__em1(double r) { return VMC_FMA(r * r, vmc__poly(VMC_EM1_P, 10, r), r); }
static inline float vmc__em1f(float r) { return VMC_FMAF(r * r, vmc__polyf(VMC_EM1F_P, 5, r), r); }

/* Fast exp: 2^k is added to the exponent bits of exp(r), so the result must
 * be normal: valid where !vmc_exp_big(x) (nan included in big). */
static inline int vmc_exp_big(double x) { return !(__builtin_fabs(x) <= 708.0); }
static inline int vmc_exp_bigf(float x) { return !(__builtin_fabsf(x) <= 86.0f); }
VMC_MATHFN double vmc_exp_fast(double x) {
    double t = VMC_FMA(x, VMC_INV_LN2, VMC_SHIFT), kd = t - VMC_SHIFT;
    double r = VMC_FMA(-kd, VMC_LN2_LO, VMC_FMA(-kd, VMC_LN2_HI, x));
    double p = 1.0 + vmc__em1(r);
    return vmc__f64(vmc__u64(p) + (vmc__u64(t) << 52));
}
VMC_MATHFN float vmc_expf_fast(float x) {
    float t = VMC_FMAF(x, VMC_INV_LN2F, VMC_SHIFTF), kd = t - VMC_SHIFTF;
    float r = VMC_FMAF(-kd, VMC_LN2F_LO, VMC_FMAF(-kd, VMC_LN2F_HI, x));
    float p = 1.0f + vmc__em1f(r);
    return vmc__f32(vmc__u32(p) + (vmc__u32(t) << 23));
}

/* Full range, branch-free: 2^k is applied as two factors 2^k1 2^k2 so that
 * k = 1024 (overflow edge) and k < -1022 (subnormal results, rounded once by
 * the last multiply) need no branch. */
VMC_MATHFN double vmc_exp(double x) {
    double xc = x > 710.0 ? 710.0 : x;            /* nan stays nan */
    xc = xc < -746.0 ? -746.0 : xc;
    double t = VMC_FMA(xc, VMC_INV_LN2, VMC_SHIFT), kd = t - VMC_SHIFT;
    double r = VMC_FMA(-kd, VMC_LN2_LO, VMC_FMA(-kd, VMC_LN2_HI, xc));
    double p = 1.0 + vmc__em1(r);
    double k1 = (kd * 0.5 + VMC_SHIFT) - VMC_SHIFT;
    return (p * vmc__pow2i(k1)) * vmc__pow2i(kd - k1);
}

VMC_MATHFN float vmc_expf(float x) {
    float xc = x > 89.0f ? 89.0f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    float t = VMC_FMAF(xc, VMC_INV_LN2F, VMC_SHIFTF), kd = t - VMC_SHIFTF;
    float r = VMC_FMAF(-kd, VMC_LN2F_LO, VMC_FMAF(-kd, VMC_LN2F_HI, xc));
    float p = 1.0f + vmc__em1f(r);
    float k1 = (kd * 0.5f + VMC_SHIFTF) - VMC_SHIFTF;
    return (p * vmc__pow2if(k1)) * vmc__pow2if(kd - k1);
}

/* -------------------------------------------------------------- expm1 */

/* expm1(x) = 2^k em1(r) + (2^k - 1): exact scaling plus one rounding, no
 * cancellation for k != 0 since then |result| >= 0.29. For k > 60 the -1 is
 * lost anyway and 2^k may overflow, so use exp's two-factor form. */
VMC_MATHFN double vmc_expm1(double x) {
    double xc = x > 710.0 ? 710.0 : x;
    xc = xc < -60.0 ? -60.0 : xc;                 /* expm1(-60) rounds to -1 */
    double t = VMC_FMA(xc, VMC_INV_LN2, VMC_SHIFT), kd = t - VMC_SHIFT;
    double r = VMC_FMA(-kd, VMC_LN2_LO, VMC_FMA(-kd, VMC_LN2_HI, xc));
    double em = vmc__em1(r);
    double k1 = (kd * 0.5 + VMC_SHIFT) - VMC_SHIFT;
    double s1 = vmc__pow2i(k1), s2 = vmc__pow2i(kd - k1);
    double s = s1 * s2;
    double small = VMC_FMA(s, em, s - 1.0);
    double big = ((1.0 + em) * s1) * s2;
    double res = kd > 60.0 ? big : small;
    return __builtin_fabs(x) < 0x1p-54 ? x : res;  /* keeps -0 and subnormals */
}

VMC_MATHFN float vmc_expm1f(float x) {
    float xc = x > 89.0f ? 89.0f : x;
    xc = xc < -20.0f ? -20.0f : xc;
    float t = VMC_FMAF(xc, VMC_INV_LN2F, VMC_SHIFTF), kd = t - VMC_SHIFTF;
    float r = VMC_FMAF(-kd, VMC_LN2F_LO, VMC_FMAF(-kd, VMC_LN2F_HI, xc));
    float em = vmc__em1f(r);
    float k1 = (kd * 0.5f + VMC_SHIFTF) - VMC_SHIFTF;
    float s1 = vmc__pow2if(k1), s2 = vmc__pow2if(kd - k1);
    float s = s1 * s2;
    float small = VMC_FMAF(s, em, s - 1.0f);
    float big = ((1.0f + em) * s1) * s2;
    float res = kd > 30.0f ? big : small;
    return __builtin_fabsf(x) < 0x1p-25f ? x : res;
}

/* --------------------------------------------------------------- tanh */

/* tanh|x| = e / (e + 2), e = expm1(2|x|) = 2^k em1(r) + (2^k - 1); for
 * |x| > 20 (float: 10) the result rounds to 1, so clamp there: then
 * 0 <= k <= 58 and 2^k is built straight from t's bits. */
VMC_MATHFN double vmc_tanh(double x) {
    double ax = __builtin_fabs(x);
    double a2 = ax > 20.0 ? 40.0 : ax + ax;
    double t = VMC_FMA(a2, VMC_INV_LN2, VMC_SHIFT), kd = t - VMC_SHIFT;
    double r = VMC_FMA(-kd, VMC_LN2_LO, VMC_FMA(-kd, VMC_LN2_HI, a2));
    double s = vmc__f64((vmc__u64(t) << 52) + 0x3ff0000000000000ULL);
    double e = VMC_FMA(s, vmc__em1(r), s - 1.0);
    return __builtin_copysign(e / (e + 2.0), x);
}

VMC_MATHFN float vmc_tanhf(float x) {
    float ax = __builtin_fabsf(x);
    float a2 = ax > 10.0f ? 20.0f : ax + ax;
    float t = VMC_FMAF(a2, VMC_INV_LN2F, VMC_SHIFTF), kd = t - VMC_SHIFTF;
    float r = VMC_FMAF(-kd, VMC_LN2F_LO, VMC_FMAF(-kd, VMC_LN2F_HI, a2));
    float s = vmc__f32((vmc__u32(t) << 23) + 0x3f800000u);
    float e = VMC_FMAF(s, vmc__em1f(r), s - 1.0f);
    return __builtin_copysignf(e / (e + 2.0f), x);
}

/* ------------------------------------------------------------ sigmoid */

/* 1/(1+exp(-x)) for x >= 0, exp(x)/(1+exp(x)) below: exp never overflows,
 * and sigmoid(-740) keeps its subnormal value instead of becoming 0. The
 * _fast forms share exp's validity (vmc_exp_big). */
#define VMC__SIGMOID(T, E, x) do { T e_ = E; T s_ = (T)1 / ((T)1 + e_);            \
                                   return x >= 0 ? s_ : e_ * s_; } while (0)
VMC_MATHFN double vmc_sigmoid(double x) { VMC__SIGMOID(double, vmc_exp(-__builtin_fabs(x)), x); }
VMC_MATHFN float vmc_sigmoidf(float x) { VMC__SIGMOID(float, vmc_expf(-__builtin_fabsf(x)), x); }
VMC_MATHFN double vmc_sigmoid_fast(double x) { VMC__SIGMOID(double, vmc_exp_fast(-__builtin_fabs(x)), x); }
VMC_MATHFN float vmc_sigmoidf_fast(float x) { VMC__SIGMOID(float, vmc_expf_fast(-__builtin_fabsf(x)), x); }

/* ---------------------------------------------------------- log, log1p */

/* u = 2^k m with m in [sqrt(2)/2, sqrt(2)): adding the complement of
 * sqrt(2)/2's mantissa carries into the exponent exactly when m must halve. */
static inline double vmc__log_split(double u, double *k) {
    uint64_t ix = vmc__u64(u);
    uint64_t e = (ix + 0x00095f619980c433ULL) >> 52;
    *k = vmc__f64(e | 0x4330000000000000ULL) - (0x1p52 + 1023.0);
    return vmc__f64(ix - ((e - 1023) << 52)) - 1.0;    /* f = m - 1 */
}

/* log(1+f) - f + hfsq = s (hfsq + R), s = f/(2+f) (fdlibm's e_log.c scheme). */
static inline double vmc__log1p_tail(double f, double *hfsq) {
    double s = f / (2.0 + f);
    double z = s * s;
    double h = 0.5 * f * f;
    *hfsq = h;
    return s * (h + z * vmc__poly(VMC_LOG_Q, 8, z));
}

/* log(u) + c for normal positive finite u (scaled by 2^kadj), c a correction
 * much smaller than ulp(log u) or a log of the tiny rest of the argument. */
static inline double vmc__log_core(double u, double kadj, double c) {
    double k, hfsq;
    double f = vmc__log_split(u, &k);
    k += kadj;
    double t = vmc__log1p_tail(f, &hfsq);
    return VMC_FMA(k, VMC_LN2_HI, 0.0) + (f - (hfsq - (t + VMC_FMA(k, VMC_LN2_LO, c))));
}

VMC_MATHFN double vmc_log(double x) {
    int sub = x < 0x1p-1022;
    double u = sub ? x * 0x1p54 : x;
    double r = vmc__log_core(u, sub ? -54.0 : 0.0, 0.0);
    r = x == INFINITY ? x : r;
    r = x == 0.0 ? -INFINITY : r;
    return (x < 0.0 || x != x) ? NAN : r;
}

/* log1p(x) = log(u) + log((1+x)/u), u = fl(1+x); the rounding error of 1+x is
 * recovered exactly by TwoSum (no products, so contraction cannot spoil it). */
static inline double vmc__log1p_pos(double x) {
    double u = 1.0 + x;
    double bb = u - 1.0;
    double err = (1.0 - (u - bb)) + (x - bb);
    return vmc__log_core(u, 0.0, err / u);
}

VMC_MATHFN double vmc_log1p(double x) {
    double r = vmc__log1p_pos(x);
    r = x == INFINITY ? x : r;
    r = x == -1.0 ? -INFINITY : r;
    r = (x < -1.0 || x != x) ? NAN : r;
    return x == 0.0 ? x : r;                       /* log1p(-0) = -0 */
}

/* log2, log10: k + log(m)/ln b, so exact powers of two give exact k. */
static inline double vmc__log_b(double x, double inv_ln_b, double log_b2_hi, double log_b2_lo) {
    int sub = x < 0x1p-1022;
    double k, hfsq;
    double f = vmc__log_split(sub ? x * 0x1p54 : x, &k);
    k -= sub ? 54.0 : 0.0;
    double t = vmc__log1p_tail(f, &hfsq);
    double lm = f - (hfsq - t);
    double r = k * log_b2_hi + VMC_FMA(lm, inv_ln_b, k * log_b2_lo);
    r = x == INFINITY ? x : r;
    r = x == 0.0 ? -INFINITY : r;
    return (x < 0.0 || x != x) ? NAN : r;
}
VMC_MATHFN double vmc_log2(double x) { return vmc__log_b(x, VMC_INV_LN2, 1.0, 0.0); }
VMC_MATHFN double vmc_log10(double x) {
    return vmc__log_b(x, 0x1.bcb7b1526e50ep-2, 0x1.3441350800000p-2, 0x1.f79fef311f12bp-34);
}

/* ----------------------------------------------------------- softplus */

/* log1p(exp(x)) = max(x, 0) + log1p(exp(-|x|)): nothing overflows, and for
 * x << 0 the result is exp(x) to full relative precision. */
VMC_MATHFN double vmc_softplus(double x) {
    double l = vmc__log1p_pos(vmc_exp(-__builtin_fabs(x)));
    return (x >= 0.0 ? x : 0.0) + l;
}
VMC_MATHFN double vmc_softplus_fast(double x) {
    double l = vmc__log1p_pos(vmc_exp_fast(-__builtin_fabs(x)));
    return (x >= 0.0 ? x : 0.0) + l;
}

/* ------------------------------------------------------------ sin, cos */

#define VMC_TRIG_LIM 0x1.8p20     /* k = round(x 2/pi) < 2^20: k*PIO2_n exact */
#define VMC_PIO2_1 0x1.921fb544p+0
#define VMC_PIO2_2 0x1.0b4611a6p-34
#define VMC_PIO2_3 0x1.3198a2ep-69
#define VMC_PIO2_4 0x1.b839a252049c1p-104

/* x = k pi/2 + r; quadrant q = k + qoff picks +-sin(r) or +-cos(r). Each
 * PIO2_n has <= 33 significant bits, so each k*PIO2_n is exact and every
 * subtraction is exact when it cancels; 152 bits of pi/2 cover the worst
 * cancellation (r ~ 2^-60 |x|) below VMC_TRIG_LIM. */
static inline double vmc__sincos(double x, uint64_t qoff) {
    double t = x * 0x1.45f306dc9c883p-1 + VMC_SHIFT;
    double kd = t - VMC_SHIFT;
    uint64_t q = vmc__u64(t) + qoff;
    double r = (((x - kd * VMC_PIO2_1) - kd * VMC_PIO2_2) - kd * VMC_PIO2_3) - kd * VMC_PIO2_4;
    double z = r * r;
    double s = VMC_FMA(r * z, vmc__poly(VMC_SIN_S, 7, z), r);
    double c = VMC_FMA(z * z, vmc__poly(VMC_COS_C, 7, z), 1.0 - 0.5 * z);
    double res = (q & 1) ? c : s;
    res = (q & 2) ? -res : res;
    return x == 0.0 ? (qoff ? 1.0 : x) : res;      /* sin(-0) = -0: r z S(z) is +0 */
}
static inline int vmc_trig_big(double x) { return __builtin_fabs(x) > VMC_TRIG_LIM; }
static inline int vmc_trig_bigf(float x) { return __builtin_fabsf(x) > (float)VMC_TRIG_LIM; }
VMC_MATHFN double vmc_sin_fast(double x) { return vmc__sincos(x, 0); }
VMC_MATHFN double vmc_cos_fast(double x) { return vmc__sincos(x, 1); }
VMC_MATHFN float vmc_sinf_fast(float x) { return (float)vmc__sincos(x, 0); }
VMC_MATHFN float vmc_cosf_fast(float x) { return (float)vmc__sincos(x, 1); }

/* Arguments beyond VMC_TRIG_LIM need Payne-Hanek reduction: libm does it. */
__attribute__((noinline, cold)) static double vmc__sin_big(double x) { return sin(x); }
__attribute__((noinline, cold)) static double vmc__cos_big(double x) { return cos(x); }
VMC_MATHFN double vmc_sin(double x) { return vmc_trig_big(x) ? vmc__sin_big(x) : vmc_sin_fast(x); }
VMC_MATHFN double vmc_cos(double x) { return vmc_trig_big(x) ? vmc__cos_big(x) : vmc_cos_fast(x); }
VMC_MATHFN float vmc_sinf(float x) { return (float)vmc_sin(x); }
VMC_MATHFN float vmc_cosf(float x) { return (float)vmc_cos(x); }

/* ---------------------------------------------------------------- erf */

/* |x| < 0.84375: erf = x E(x^2). Above: erf = 1 - exp(-x^2) G(1/|x|) in three
 * pieces of u = 1/|x|. All four are degree-16 polynomials, so one Horner
 * loop runs with coefficients selected per lane (a blend each, no gather).
 * |x| is clamped to 6, where erf rounds to 1. */
VMC_MATHFN double vmc_erf(double x) {
    double ax = __builtin_fabs(x);
    ax = ax > 6.0 ? 6.0 : ax;
    int small = ax < 0.84375;
    double u = 1.0 / (small ? 1.0 : ax);
    int p2 = u > 2.0 / 3.0;
    int p1 = u > 0.4;
    double tm = p2 ? VMC_ERF_M2 : (p1 ? VMC_ERF_M1 : VMC_ERF_M0);
    double ti = p2 ? VMC_ERF_IH2 : (p1 ? VMC_ERF_IH1 : VMC_ERF_IH0);
    double v = small ? ax * ax : (u - tm) * ti;
    double p = 0.0;
    for (int i = 16; i >= 0; i--) {
        double c = small ? VMC_ERF_E[i] : (p2 ? VMC_ERF_G2[i] : (p1 ? VMC_ERF_G1[i] : VMC_ERF_G0[i]));
        p = VMC_FMA(p, v, c);
    }
    double tail = 1.0 - vmc_exp(-(ax * ax)) * p;
    return __builtin_copysign(small ? ax * p : tail, x);
}

/* float32 via float64: rounding an (almost) correctly rounded double. */
VMC_MATHFN float vmc_logf(float x) { return (float)vmc_log(x); }
VMC_MATHFN float vmc_log1pf(float x) { return (float)vmc_log1p(x); }
VMC_MATHFN float vmc_log2f(float x) { return (float)vmc_log2(x); }
VMC_MATHFN float vmc_log10f(float x) { return (float)vmc_log10(x); }
VMC_MATHFN float vmc_softplusf(float x) { return (float)vmc_softplus(x); }
VMC_MATHFN float vmc_softplusf_fast(float x) { return (float)vmc_softplus_fast(x); }
VMC_MATHFN float vmc_erff(float x) { return (float)vmc_erf(x); }

#endif /* VMC_MATH_H */
