/* Row kernels: softmax, log-softmax, softmax cross-entropy and its gradient,
 * argmax/argmin, over the rows of an R x K matrix of any element strides (a
 * vector is one row; an axis other than the last is a transposed view). One
 * work-group of 256 work-items per row; maxima and sums meet in local memory.
 * As the CPU's thunks: a row holding a nan gives nan (its argmax is the first
 * nan), ties give the first index. Targets outside [0, K) set the error flag
 * E[oe + slot] (vmc/gpu/_gpu.pyx: reported at the next read to the host). */
#define VMC_ROW_LOCAL 256

/* (v, i) beats (w, j): nan first, then larger (smaller for argmin), then earlier */
#define VMC_BEATS(v, i, w, j, GT) \
    ((v) != (v) ? ((w) == (w) || (i) < (j)) : ((w) == (w) && ((v) GT (w) || ((v) == (w) && (i) < (j)))))

/* Within one row's work-group: the best (value, index) of the lanes' (m, mi),
 * left in shv[0], shi[0] (mi == K: the lane saw no column). */
#define VMC_ROW_ARGBEST(T, shv, shi, m, mi)                                             \
    shv[LID_0] = m; shi[LID_0] = mi;                                                    \
    local_barrier();                                                                    \
    for (vmc_long s = LDIM_0 / 2; s > 0; s >>= 1) {                                     \
        if (LID_0 < s) {                                                                \
            const T v_ = shv[LID_0 + s]; const vmc_long i_ = shi[LID_0 + s];            \
            if (i_ < K && (shi[LID_0] == K || VMC_BEATS(v_, i_, shv[LID_0], shi[LID_0], >))) \
                { shv[LID_0] = v_; shi[LID_0] = i_; }                                   \
        }                                                                               \
        local_barrier();                                                                \
    }

/* t = the sum over row r of X of EXP(x - m), every lane holding it at the end. */
#define VMC_ROW_EXPSUM(ACC, EXP, t, m, sh)                                              \
    ACC t = 0;                                                                          \
    for (vmc_long c = LID_0; c < K; c += LDIM_0)                                        \
        t += EXP((ACC)X[ox + r * sr + c * sc] - (m));                                   \
    sh[LID_0] = t;                                                                      \
    local_barrier();                                                                    \
    for (vmc_long s = LDIM_0 / 2; s > 0; s >>= 1) {                                     \
        if (LID_0 < s) sh[LID_0] += sh[LID_0 + s];                                      \
        local_barrier();                                                                \
    }                                                                                   \
    t = sh[0];                                                                          \
    local_barrier();

#define VMC_ROW_KERNELS(S, T, ACC, EXP, LOG)                                           \
KERNEL void vmc_softmax_##S(const vmc_long R, const vmc_long K, GLOBAL_MEM const T *X,   \
        const vmc_long ox, const vmc_long sr, const vmc_long sc, GLOBAL_MEM T *Y,         \
        const vmc_long oy, const vmc_long logsm) {                                       \
    LOCAL_MEM ACC sh[VMC_ROW_LOCAL];                                                    \
    for (vmc_long r = GID_0; r < R; r += GDIM_0) {                                      \
        ACC m = -INFINITY;                                                              \
        for (vmc_long c = LID_0; c < K; c += LDIM_0) {                                  \
            const ACC v = X[ox + r * sr + c * sc];                                      \
            m = (v > m || v != v) ? v : m;                                              \
        }                                                                               \
        sh[LID_0] = m;                                                                  \
        local_barrier();                                                                \
        for (vmc_long s = LDIM_0 / 2; s > 0; s >>= 1) {                                 \
            if (LID_0 < s) { const ACC b = sh[LID_0 + s];                               \
                             if (b > sh[LID_0] || b != b) sh[LID_0] = b; }              \
            local_barrier();                                                            \
        }                                                                               \
        m = sh[0];                                                                      \
        local_barrier();                                                                \
        VMC_ROW_EXPSUM(ACC, EXP, t, m, sh);                                             \
        const ACC lt = LOG(t);                                                          \
        for (vmc_long c = LID_0; c < K; c += LDIM_0) {                                  \
            const ACC v = (ACC)X[ox + r * sr + c * sc] - m;                             \
            Y[oy + r * K + c] = (T)(logsm ? v - lt : EXP(v) / t);                       \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
KERNEL void vmc_argmax_##S(const vmc_long R, const vmc_long K, GLOBAL_MEM const T *X,    \
        const vmc_long ox, const vmc_long sr, const vmc_long sc,                        \
        GLOBAL_MEM npy_int64 *A, const vmc_long oa, const vmc_long want_min) {          \
    LOCAL_MEM T shv[VMC_ROW_LOCAL];                                                     \
    LOCAL_MEM vmc_long shi[VMC_ROW_LOCAL];                                              \
    for (vmc_long r = GID_0; r < R; r += GDIM_0) {                                      \
        T m = 0; vmc_long mi = K;                                                       \
        for (vmc_long c = LID_0; c < K; c += LDIM_0) {                                  \
            const T v = want_min ? -X[ox + r * sr + c * sc] : X[ox + r * sr + c * sc];  \
            if (mi == K || VMC_BEATS(v, c, m, mi, >)) { m = v; mi = c; }                \
        }                                                                               \
        VMC_ROW_ARGBEST(T, shv, shi, m, mi);                                            \
        if (LID_0 == 0) A[oa + r] = shi[0] == K ? 0 : shi[0];                           \
        local_barrier();                                                                \
    }                                                                                   \
}                                                                                       \
KERNEL void vmc_xent_##S(const vmc_long R, const vmc_long K, GLOBAL_MEM const T *X,      \
        const vmc_long ox, const vmc_long sr, const vmc_long sc,                        \
        GLOBAL_MEM const npy_int64 *Yi, const vmc_long oyi, const vmc_long syi,         \
        GLOBAL_MEM T *NLL, const vmc_long on, GLOBAL_MEM T *SM, const vmc_long osm,     \
        GLOBAL_MEM npy_int64 *AM, const vmc_long oam,                                   \
        GLOBAL_MEM npy_int64 *E, const vmc_long oe, const vmc_long slot) {              \
    LOCAL_MEM T shv[VMC_ROW_LOCAL];                                                     \
    LOCAL_MEM vmc_long shi[VMC_ROW_LOCAL];                                              \
    LOCAL_MEM ACC sh[VMC_ROW_LOCAL];                                                    \
    for (vmc_long r = GID_0; r < R; r += GDIM_0) {                                      \
        T m = 0; vmc_long mi = K;                                                       \
        for (vmc_long c = LID_0; c < K; c += LDIM_0) {                                  \
            const T v = X[ox + r * sr + c * sc];                                        \
            if (mi == K || VMC_BEATS(v, c, m, mi, >)) { m = v; mi = c; }                \
        }                                                                               \
        VMC_ROW_ARGBEST(T, shv, shi, m, mi);                                            \
        const ACC mx = shv[0];                                                          \
        const vmc_long am = shi[0];                                                     \
        local_barrier();                                                                \
        VMC_ROW_EXPSUM(ACC, EXP, t, mx, sh);                                            \
        for (vmc_long c = LID_0; c < K; c += LDIM_0)                                    \
            SM[osm + r * K + c] = (T)(EXP((ACC)X[ox + r * sr + c * sc] - mx) / t);      \
        if (LID_0 == 0) {                                                               \
            const npy_int64 y = Yi[oyi + r * syi];                                      \
            AM[oam + r] = am;                                                           \
            if (y < 0 || y >= K) { E[oe + slot] = r + 1; NLL[on + r] = (T)NAN; }        \
            else NLL[on + r] = (T)(LOG(t) + mx - (ACC)X[ox + r * sr + y * sc]);         \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
KERNEL void vmc_xent_dx_##S(const vmc_long R, const vmc_long K,                         \
        GLOBAL_MEM const T *G, const vmc_long og, const vmc_long sg,                    \
        GLOBAL_MEM const T *SM, const vmc_long osm, const vmc_long sr, const vmc_long sc, \
        GLOBAL_MEM const npy_int64 *Yi, const vmc_long oyi, const vmc_long syi,         \
        GLOBAL_MEM T *O, const vmc_long oo,                                             \
        GLOBAL_MEM npy_int64 *E, const vmc_long oe, const vmc_long slot) {              \
    for (vmc_long i = GID_0 * LDIM_0 + LID_0; i < R * K; i += GDIM_0 * LDIM_0) {        \
        const vmc_long r = i / K, c = i % K;                                            \
        const npy_int64 y = Yi[oyi + r * syi];                                          \
        const T g = G[og + r * sg];                                                     \
        if (c == 0 && (y < 0 || y >= K)) E[oe + slot] = r + 1;                          \
        O[oo + i] = SM[osm + r * sr + c * sc] * g - (c == y ? g : (T)0);                \
    }                                                                                   \
}
VMC_ROW_KERNELS(f32, float, float, expf, logf)
VMC_ROW_KERNELS(f64, double, double, exp, log)
