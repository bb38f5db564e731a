/* 2-d convolution on the device as im2col + GEMM (vmc/gpu/_gconv.pyx), for a
 * chunk of Nb images at a time:
 *
 *   COL  (C * kh * kw, Nb * oh * ow), C-contiguous: row (c, i, j), column
 *        (n, y, x) holds the padded input at (n, c, y*sy - ph + i'*dy,
 *        x*sx - pw + j'*dx), 0 in the padding, with i' = kh-1-i and
 *        j' = kw-1-j for a true convolution (flip), else i and j. The filters
 *        are then used as stored, (F, C/G * kh * kw) per group, and the filter
 *        gradient comes out as stored too.
 *   FNP  (F, Nb, oh * ow), C-contiguous: what one GEMM per group writes (or
 *        reads, for the gradients); vmc_conv_reorder moves it to and from the
 *        (N, F, oh, ow) layout of any strides.
 *
 * vmc_col2im is the adjoint of im2col as a gather: each input element sums
 * the columns that read it, in the order of the CPU's scatter (kernel rows,
 * then columns, ascending), so nothing is added atomically. Grid-stride loops
 * over 64-bit indices; the geometry is passed by value every launch.
 * vmc_conv_reorder: FNP (F, Nb, P) <-> T4 (Nb, F, oh, ow) of element strides
 * t0..t3 (to_fnp: T4 is read into FNP, else FNP is written into T4). */

#define VMC_CONV_GEO                                                                    \
    const vmc_long Nb, const vmc_long C, const vmc_long H, const vmc_long W,              \
    const vmc_long kh, const vmc_long kw, const vmc_long oh, const vmc_long ow,           \
    const vmc_long ph, const vmc_long pw, const vmc_long sy, const vmc_long sx,           \
    const vmc_long dy, const vmc_long dx, const vmc_long flip

#define VMC_CONV_KERNELS(S, T)                                                          \
KERNEL void vmc_im2col_##S(GLOBAL_MEM const T *X, const vmc_long ox, const vmc_long xn,  \
        const vmc_long xc, const vmc_long xh, const vmc_long xw,                        \
        GLOBAL_MEM T *COL, const vmc_long ocol, VMC_CONV_GEO) {                         \
    const vmc_long cols = Nb * oh * ow, total = C * kh * kw * cols;                     \
    for (vmc_long e = GID_0 * LDIM_0 + LID_0; e < total; e += GDIM_0 * LDIM_0) {        \
        vmc_long q = e % cols, r = e / cols;                                            \
        const vmc_long x = q % ow; q /= ow;                                             \
        const vmc_long y = q % oh, n = q / oh;                                          \
        const vmc_long j = r % kw; r /= kw;                                             \
        const vmc_long i = r % kh, c = r / kh;                                          \
        const vmc_long yy = y * sy - ph + (flip ? kh - 1 - i : i) * dy;                 \
        const vmc_long xx = x * sx - pw + (flip ? kw - 1 - j : j) * dx;                 \
        COL[ocol + e] = (yy >= 0 && yy < H && xx >= 0 && xx < W)                        \
            ? X[ox + n * xn + c * xc + yy * xh + xx * xw] : (T)0;                       \
    }                                                                                   \
}                                                                                       \
KERNEL void vmc_col2im_##S(GLOBAL_MEM const T *COL, const vmc_long ocol,                 \
        GLOBAL_MEM T *GI, const vmc_long ogi, VMC_CONV_GEO) {                           \
    const vmc_long cols = Nb * oh * ow, total = Nb * C * H * W;                         \
    for (vmc_long e = GID_0 * LDIM_0 + LID_0; e < total; e += GDIM_0 * LDIM_0) {        \
        vmc_long q = e;                                                                 \
        const vmc_long x = q % W; q /= W;                                               \
        const vmc_long y = q % H; q /= H;                                               \
        const vmc_long c = q % C, n = q / C;                                            \
        T acc = 0;                                                                      \
        for (vmc_long i = 0; i < kh; i++) {                                             \
            const vmc_long ty = y + ph - (flip ? kh - 1 - i : i) * dy;                  \
            if (ty < 0 || ty % sy != 0 || ty / sy >= oh) continue;                      \
            for (vmc_long j = 0; j < kw; j++) {                                         \
                const vmc_long tx = x + pw - (flip ? kw - 1 - j : j) * dx;              \
                if (tx < 0 || tx % sx != 0 || tx / sx >= ow) continue;                  \
                acc += COL[ocol + ((c * kh + i) * kw + j) * cols                        \
                           + (n * oh + ty / sy) * ow + tx / sx];                        \
            }                                                                           \
        }                                                                               \
        GI[ogi + e] = acc;                                                              \
    }                                                                                   \
}                                                                                       \
KERNEL void vmc_conv_reorder_##S(const vmc_long Nb, const vmc_long F, const vmc_long oh, \
        const vmc_long ow, GLOBAL_MEM T *FNP, const vmc_long of, GLOBAL_MEM T *T4,      \
        const vmc_long ot, const vmc_long t0, const vmc_long t1, const vmc_long t2,     \
        const vmc_long t3, const vmc_long to_fnp) {                                     \
    const vmc_long total = F * Nb * oh * ow;                                            \
    for (vmc_long e = GID_0 * LDIM_0 + LID_0; e < total; e += GDIM_0 * LDIM_0) {        \
        vmc_long q = e;                                                                 \
        const vmc_long x = q % ow; q /= ow;                                             \
        const vmc_long y = q % oh; q /= oh;                                             \
        const vmc_long n = q % Nb, f = q / Nb;                                          \
        const vmc_long t = ot + n * t0 + f * t1 + y * t2 + x * t3;                      \
        if (to_fnp) FNP[of + e] = T4[t];                                                \
        else T4[t] = FNP[of + e];                                                       \
    }                                                                                   \
}
VMC_CONV_KERNELS(f32, float)
VMC_CONV_KERNELS(f64, double)
