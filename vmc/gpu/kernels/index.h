/* Advanced indexing: y = x[index] (gather) and x[index] = y / += y (scatter),
 * for up to VMC_IDX_DIMS output dims and VMC_IDX_ARRAYS integer index arrays
 * (vmc/gpu/indexing.py plans them: the basic part of the index is a view of x,
 * each output dim has a stride into that view, each index array a stride per
 * output dim and the stride and length of the dim it indexes). Negative
 * indices count from the end; one out of range sets the error flag
 * E[oe + slot] (reported at the next read to the host). Repeated indices add
 * up under += (atomics, add == 1), as numpy's add.at; with no index arrays
 * (nk == 0) these are strided copies (alloc, join) and adds (add == 2) between
 * views. */
#define VMC_IDX_DIMS 6
#define VMC_IDX_ARRAYS 3

#define VMC_IDX_PARAMS(T)                                                               \
    const vmc_long n, const vmc_long nk,                                                 \
    const vmc_long d1, const vmc_long d2, const vmc_long d3, const vmc_long d4,         \
    const vmc_long d5, const vmc_long s0, const vmc_long s1, const vmc_long s2,         \
    const vmc_long s3, const vmc_long s4, const vmc_long s5,                            \
    GLOBAL_MEM const npy_int64 *I0, const vmc_long o0, const vmc_long a00,              \
    const vmc_long a01, const vmc_long a02, const vmc_long a03, const vmc_long a04,     \
    const vmc_long a05, const vmc_long k0, const vmc_long m0,                           \
    GLOBAL_MEM const npy_int64 *I1, const vmc_long o1, const vmc_long a10,              \
    const vmc_long a11, const vmc_long a12, const vmc_long a13, const vmc_long a14,     \
    const vmc_long a15, const vmc_long k1, const vmc_long m1,                           \
    GLOBAL_MEM const npy_int64 *I2, const vmc_long o2, const vmc_long a20,              \
    const vmc_long a21, const vmc_long a22, const vmc_long a23, const vmc_long a24,     \
    const vmc_long a25, const vmc_long k2, const vmc_long m2,                           \
    GLOBAL_MEM npy_int64 *E, const vmc_long oe, const vmc_long slot

/* The source offset (elements from the view's start) of output element i, and
 * the index arrays' offsets, walking the output dims innermost first. */
#define VMC_IDX_WALK(i)                                                                 \
    vmc_long rem = (i), src = 0, p0 = o0, p1 = o1, p2 = o2, c;                          \
    c = rem % d5; rem /= d5; src += c * s5; p0 += c * a05; p1 += c * a15; p2 += c * a25; \
    c = rem % d4; rem /= d4; src += c * s4; p0 += c * a04; p1 += c * a14; p2 += c * a24; \
    c = rem % d3; rem /= d3; src += c * s3; p0 += c * a03; p1 += c * a13; p2 += c * a23; \
    c = rem % d2; rem /= d2; src += c * s2; p0 += c * a02; p1 += c * a12; p2 += c * a22; \
    c = rem % d1; rem /= d1; src += c * s1; p0 += c * a01; p1 += c * a11; p2 += c * a21; \
    src += rem * s0; p0 += rem * a00; p1 += rem * a10; p2 += rem * a20;                 \
    int bad = 0;                                                                        \
    if (nk > 0) { vmc_long j = I0[p0]; j += j < 0 ? m0 : 0;                             \
                  if (j < 0 || j >= m0) { bad = 1; j = 0; } src += j * k0; }            \
    if (nk > 1) { vmc_long j = I1[p1]; j += j < 0 ? m1 : 0;                             \
                  if (j < 0 || j >= m1) { bad = 1; j = 0; } src += j * k1; }            \
    if (nk > 2) { vmc_long j = I2[p2]; j += j < 0 ? m2 : 0;                             \
                  if (j < 0 || j >= m2) { bad = 1; j = 0; } src += j * k2; }            \
    if (bad) E[oe + slot] = (i) + 1;

#define VMC_GATHER(S, T)                                                                \
KERNEL void vmc_gather_##S(VMC_IDX_PARAMS(T), GLOBAL_MEM const T *X, const vmc_long ox, \
                           GLOBAL_MEM T *Y, const vmc_long oy) {                        \
    for (vmc_long i = GID_0 * LDIM_0 + LID_0; i < n; i += GDIM_0 * LDIM_0) {            \
        VMC_IDX_WALK(i)                                                                 \
        Y[oy + i] = bad ? (T)0 : X[ox + src];                                           \
    }                                                                                   \
}                                                                                       \
KERNEL void vmc_scatter_##S(VMC_IDX_PARAMS(T), GLOBAL_MEM T *X, const vmc_long ox,       \
                            GLOBAL_MEM const T *V, const vmc_long ov, const vmc_long v0, \
                            const vmc_long v1, const vmc_long v2, const vmc_long v3,    \
                            const vmc_long v4, const vmc_long v5, const vmc_long add) {  \
    for (vmc_long i = GID_0 * LDIM_0 + LID_0; i < n; i += GDIM_0 * LDIM_0) {            \
        VMC_IDX_WALK(i)                                                                 \
        vmc_long q = i, pv = ov;                                                        \
        pv += (q % d5) * v5; q /= d5; pv += (q % d4) * v4; q /= d4;                     \
        pv += (q % d3) * v3; q /= d3; pv += (q % d2) * v2; q /= d2;                     \
        pv += (q % d1) * v1; q /= d1; pv += q * v0;                                     \
        if (!bad) {                                                                     \
            if (add == 1) VMC_ATOMIC_ADD_##S(X + ox + src, V[pv]);                      \
            else if (add == 2) X[ox + src] += V[pv];                                    \
            else X[ox + src] = V[pv];                                                   \
        }                                                                               \
    }                                                                                   \
}
VMC_GATHER(f32, npy_float32)
VMC_GATHER(f64, npy_float64)
VMC_GATHER(i64, npy_int64)
VMC_GATHER(i32, npy_int32)
