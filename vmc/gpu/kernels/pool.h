/* 2-d pooling on the device (vmc/gpu/_gconv.pyx): the last two dims of an
 * input seen as (B, H, W) of any element strides; results C-contiguous.
 *
 * Window (r, c) covers rows r*sy - ph .. r*sy - ph + wh - 1 of the input (cols
 * likewise); only the elements inside the input take part (a max never sees
 * the padding, a sum adds nothing for it), in the CPU's order: window rows,
 * then columns, ascending. mode: 0 max, 1 sum, 2 average_inc_pad, 3
 * average_exc_pad; an average divides by vmc_pool_count (the padding counted
 * or not; windows hanging over the border without padding, ignore_border
 * False, count what is left).
 *
 * The gradients are gathers, one work-item per element of the result, so
 * nothing is added atomically: vmc_pool_grad sums over the windows holding an
 * input element (max: those whose maximum equals it), from the last window to
 * the first, which is the order the CPU's scatter (by window offset, ascending)
 * adds them in; vmc_pool_gradgrad sums g over each window's elements equal to
 * its maximum. */

#define VMC_POOL_GEO                                                                    \
    const vmc_long B, const vmc_long H, const vmc_long W, const vmc_long oh,             \
    const vmc_long ow, const vmc_long wh, const vmc_long ww, const vmc_long sy,          \
    const vmc_long sx, const vmc_long ph, const vmc_long pw, const vmc_long mode

/* The gradients' operands: the input X, the pooled output O and the output
 * gradient G, each an offset and (B, H, W)-strides. */
#define VMC_POOL_XOG(T)                                                                 \
    GLOBAL_MEM const T *X, const vmc_long ox, const vmc_long xb, const vmc_long xh,      \
    const vmc_long xw, GLOBAL_MEM const T *O, const vmc_long oo, const vmc_long pb,      \
    const vmc_long ph_, const vmc_long pw_, GLOBAL_MEM const T *G, const vmc_long og,    \
    const vmc_long gb, const vmc_long gh, const vmc_long gw

/* Elements window (r, c) averages over (see vmc/thunks/pool.py's _counts). */
VMC_DEVFN vmc_long vmc_pool_count(const vmc_long r, const vmc_long c, VMC_POOL_GEO) {
    vmc_long y0 = r * sy, y1 = y0 + wh, x0 = c * sx, x1 = x0 + ww;
    y1 = y1 < H + 2 * ph ? y1 : H + 2 * ph;
    x1 = x1 < W + 2 * pw ? x1 : W + 2 * pw;
    if (mode == 3) {
        y0 = y0 > ph ? y0 : ph;  y1 = y1 < H + ph ? y1 : H + ph;
        x0 = x0 > pw ? x0 : pw;  x1 = x1 < W + pw ? x1 : W + pw;
    }
    return (y1 - y0) * (x1 - x0);
}

#define VMC_POOL_KERNELS(S, T)                                                          \
KERNEL void vmc_pool_##S(GLOBAL_MEM const T *X, const vmc_long ox, const vmc_long xb,    \
        const vmc_long xh, const vmc_long xw, GLOBAL_MEM T *Y, const vmc_long oy,        \
        VMC_POOL_GEO) {                                                                 \
    const vmc_long total = B * oh * ow;                                                 \
    for (vmc_long e = GID_0 * LDIM_0 + LID_0; e < total; e += GDIM_0 * LDIM_0) {        \
        const vmc_long c = e % ow, r = (e / ow) % oh, b = e / (ow * oh);                \
        T acc = mode == 0 ? (T)(-INFINITY) : (T)0;                                      \
        for (vmc_long i = 0; i < wh; i++) {                                             \
            const vmc_long y = r * sy - ph + i;                                         \
            if (y < 0 || y >= H) continue;                                              \
            for (vmc_long j = 0; j < ww; j++) {                                         \
                const vmc_long x = c * sx - pw + j;                                     \
                if (x < 0 || x >= W) continue;                                          \
                const T v = X[ox + b * xb + y * xh + x * xw];                           \
                if (mode != 0) acc += v;                                                \
                else if (v > acc || v != v) acc = v;                                    \
            }                                                                           \
        }                                                                               \
        if (mode >= 2)                                                                  \
            acc /= (T)vmc_pool_count(r, c, B, H, W, oh, ow, wh, ww, sy, sx, ph, pw, mode); \
        Y[oy + e] = acc;                                                                \
    }                                                                                   \
}                                                                                       \
KERNEL void vmc_pool_grad_##S(VMC_POOL_XOG(T),                                \
        GLOBAL_MEM T *GI, const vmc_long ogi,                                           \
        VMC_POOL_GEO) {                                                                 \
    const vmc_long total = B * H * W;                                                   \
    for (vmc_long e = GID_0 * LDIM_0 + LID_0; e < total; e += GDIM_0 * LDIM_0) {        \
        const vmc_long x = e % W, y = (e / W) % H, b = e / (W * H);                     \
        const vmc_long ey = y + ph, ex = x + pw;                                         \
        const vmc_long r1 = ey / sy < oh - 1 ? ey / sy : oh - 1;                        \
        const vmc_long c1 = ex / sx < ow - 1 ? ex / sx : ow - 1;                        \
        const vmc_long r0 = ey >= wh ? (ey - wh) / sy + 1 : 0;                          \
        const vmc_long c0 = ex >= ww ? (ex - ww) / sx + 1 : 0;                          \
        const T v = mode == 0 ? X[ox + b * xb + y * xh + x * xw] : (T)0;                \
        T acc = 0;                                                                      \
        for (vmc_long r = r1; r >= r0; r--) {                                           \
            for (vmc_long c = c1; c >= c0; c--) {                                       \
                const T g = G[og + b * gb + r * gh + c * gw];                           \
                if (mode == 0) {                                                        \
                    if (v == O[oo + b * pb + r * ph_ + c * pw_]) acc += g;              \
                } else if (mode == 1) {                                                 \
                    acc += g;                                                           \
                } else {                                                                \
                    acc += g / (T)vmc_pool_count(r, c, B, H, W, oh, ow, wh, ww, sy, sx, \
                                                 ph, pw, mode);                         \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        GI[ogi + e] = acc;                                                              \
    }                                                                                   \
}                                                                                       \
KERNEL void vmc_pool_gradgrad_##S(VMC_POOL_XOG(T),                                      \
        GLOBAL_MEM T *R, const vmc_long orr,                                            \
        VMC_POOL_GEO) {                                                                 \
    const vmc_long total = B * oh * ow;                                                 \
    for (vmc_long e = GID_0 * LDIM_0 + LID_0; e < total; e += GDIM_0 * LDIM_0) {        \
        const vmc_long c = e % ow, r = (e / ow) % oh, b = e / (ow * oh);                \
        const T m = O[oo + b * pb + r * ph_ + c * pw_];                                 \
        T acc = 0;                                                                      \
        for (vmc_long i = 0; i < wh; i++) {                                             \
            const vmc_long y = r * sy - ph + i;                                         \
            if (y < 0 || y >= H) continue;                                              \
            for (vmc_long j = 0; j < ww; j++) {                                         \
                const vmc_long x = c * sx - pw + j;                                     \
                if (x < 0 || x >= W) continue;                                          \
                if (X[ox + b * xb + y * xh + x * xw] == m)                              \
                    acc += G[og + b * gb + y * gh + x * gw];                            \
            }                                                                           \
        }                                                                               \
        R[orr + e] = acc;                                                               \
    }                                                                                   \
}
VMC_POOL_KERNELS(f32, float)
VMC_POOL_KERNELS(f64, double)
