/* conv_direct_body.h: the direct convolution kernels of conv_direct.h, for one
 * element type and vector width. conv_direct.h includes it once per variant
 * with CD_T (the element type), CD_LANES (elements per vector) and CD_FN(name)
 * (the variant's name of a function) defined. Not a header of its own. */

typedef CD_T CD_FN(vec) __attribute__((vector_size(CD_LANES * sizeof(CD_T))));

static inline CD_FN(vec) CD_FN(load)(const CD_T *p)
{
    CD_FN(vec) v;
    memcpy(&v, p, sizeof v);        /* an unaligned vector load */
    return v;
}

/* Filters [0, FB) of w (k weights each) over the whole output out (FB rows of
 * oh * ow), in tiles of XV vectors of columns: each tile's FB x XV
 * accumulators stay in registers through the loop over (c, i, j). One
 * function per tile shape, each with arrays of its exact size: GCC keeps
 * those in registers, not arrays sized for the largest tile (measured: LeNet's
 * first layer 25% slower that way). */
#define CD_FWD_ROWS(FB, XV) \
static void CD_FN(fwd_rows_##FB##x##XV)( \
    const CD_T *xp, ptrdiff_t hp, ptrdiff_t wp, const CD_T *w, ptrdiff_t cg, ptrdiff_t kh, \
    ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t dh, ptrdiff_t dw, CD_T *out, ptrdiff_t oh, \
    ptrdiff_t ow) \
{ \
    typedef CD_FN(vec) vec; \
    const ptrdiff_t k = cg * kh * kw, p = oh * ow; \
    for (ptrdiff_t oy = 0; oy < oh; oy++) \
        for (ptrdiff_t x0 = 0; x0 < ow; x0 += XV * CD_LANES) { \
            vec acc[FB][XV]; \
            for (int q = 0; q < FB; q++) \
                for (int v = 0; v < XV; v++) \
                    acc[q][v] = (vec){0}; \
            for (ptrdiff_t c = 0; c < cg; c++) \
                for (ptrdiff_t i = 0; i < kh; i++) { \
                    const CD_T *row = xp + (c * hp + oy * sh + i * dh) * wp + x0; \
                    const CD_T *wr = w + (c * kh + i) * kw; \
                    for (ptrdiff_t j = 0; j < kw; j++) { \
                        vec xv[XV]; \
                        for (int v = 0; v < XV; v++) \
                            xv[v] = CD_FN(load)(row + j * dw + v * CD_LANES); \
                        for (int q = 0; q < FB; q++) { \
                            CD_T s = wr[q * k + j]; \
                            for (int v = 0; v < XV; v++) \
                                acc[q][v] += xv[v] * s; \
                        } \
                    } \
                } \
            ptrdiff_t n = ow - x0 < XV * CD_LANES ? ow - x0 : XV * CD_LANES; \
            for (int q = 0; q < FB; q++) \
                memcpy(out + q * p + oy * ow + x0, acc[q], n * sizeof(CD_T)); \
        } \
}
CD_FWD_ROWS(4, 2)
CD_FWD_ROWS(2, 2)
CD_FWD_ROWS(1, 2)
CD_FWD_ROWS(8, 1)
CD_FWD_ROWS(4, 1)
CD_FWD_ROWS(2, 1)
CD_FWD_ROWS(1, 1)
#undef CD_FWD_ROWS

/* out[f, oy, ox] = sum over (c, i, j) of w[f, c, i, j] xp[c, oy sh + i dh, ox + j dw]
 * for one image and group: xp (cg, hp, wp) C-contiguous, readable for
 * CD_SLACK elements past its end; w (nf, cg, kh, kw) and out (nf, oh, ow)
 * C-contiguous. Tiles are 4 filters x 2 vectors of columns, or 8 filters x 1
 * vector when one vector holds a row (LeNet's second layer: rows of 8; float32
 * on AVX2, one process: 2.8 ms against 4.4 ms with half-empty 4 x 2 tiles).
 * Wider rows keep 4 x 2 even when their last tile is half empty (LeNet's first
 * layer, rows of 24: 0.55 against 0.67 ms with 8 x 1). */
static void CD_FN(fwd)(const CD_T *xp, ptrdiff_t hp, ptrdiff_t wp, const CD_T *w,
                       ptrdiff_t nf, ptrdiff_t cg, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,
                       ptrdiff_t dh, ptrdiff_t dw, CD_T *out, ptrdiff_t oh, ptrdiff_t ow)
{
    const ptrdiff_t k = cg * kh * kw, p = oh * ow;
    ptrdiff_t f = 0;
#define CD_ROWS(FB, XV) \
    for (; f + FB <= nf; f += FB) \
        CD_FN(fwd_rows_##FB##x##XV)(xp, hp, wp, w + f * k, cg, kh, kw, sh, dh, dw, \
                                    out + f * p, oh, ow)
    if (ow <= CD_LANES) {
        CD_ROWS(8, 1);
        CD_ROWS(4, 1);
        CD_ROWS(2, 1);
        CD_ROWS(1, 1);
    } else {
        CD_ROWS(4, 2);
        CD_ROWS(2, 2);
        CD_ROWS(1, 2);
    }
#undef CD_ROWS
}

/* gw[q, c, i, j] += the sum over (oy, ox) of top[q, oy, ox] xp[c, oy sh + i dh, ox + j dw]
 * for the FB filters at top (rows of oh * ow) and gw (rows of k); one
 * function per FB, as for the forward tiles. */
#define CD_GW_TILE(FB) \
static void CD_FN(gw_tile_##FB)( \
    const CD_T *xp, ptrdiff_t hp, ptrdiff_t wp, const CD_T *top, ptrdiff_t cg, ptrdiff_t kh, \
    ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t dh, ptrdiff_t dw, CD_T *gw, ptrdiff_t oh, \
    ptrdiff_t ow) \
{ \
    typedef CD_FN(vec) vec; \
    const ptrdiff_t k = cg * kh * kw, p = oh * ow, full = ow - ow % CD_LANES; \
    for (ptrdiff_t c = 0; c < cg; c++) \
        for (ptrdiff_t i = 0; i < kh; i++) \
            for (ptrdiff_t j = 0; j < kw; j++) { \
                vec acc[FB]; \
                double tail[FB]; \
                for (int q = 0; q < FB; q++) { \
                    acc[q] = (vec){0}; \
                    tail[q] = 0; \
                } \
                for (ptrdiff_t oy = 0; oy < oh; oy++) { \
                    const CD_T *xr = xp + (c * hp + oy * sh + i * dh) * wp + j * dw; \
                    const CD_T *tr = top + oy * ow; \
                    for (ptrdiff_t x = 0; x < full; x += CD_LANES) { \
                        vec xv = CD_FN(load)(xr + x); \
                        for (int q = 0; q < FB; q++) \
                            acc[q] += CD_FN(load)(tr + q * p + x) * xv; \
                    } \
                    for (ptrdiff_t x = full; x < ow; x++) \
                        for (int q = 0; q < FB; q++) \
                            tail[q] += tr[q * p + x] * xr[x]; \
                } \
                for (int q = 0; q < FB; q++) { \
                    CD_T s = (CD_T)tail[q]; \
                    for (int l = 0; l < CD_LANES; l++) \
                        s += acc[q][l]; \
                    gw[q * k + (c * kh + i) * kw + j] += s; \
                } \
            } \
}
CD_GW_TILE(4)
CD_GW_TILE(1)
#undef CD_GW_TILE

/* The filter gradient of one image and group, added into gw (nf, cg, kh, kw):
 * xp as for fwd, top (nf, oh, ow) C-contiguous. */
static void CD_FN(gw)(const CD_T *xp, ptrdiff_t hp, ptrdiff_t wp, const CD_T *top,
                      ptrdiff_t nf, ptrdiff_t cg, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,
                      ptrdiff_t dh, ptrdiff_t dw, CD_T *gw, ptrdiff_t oh, ptrdiff_t ow)
{
    const ptrdiff_t k = cg * kh * kw, p = oh * ow;
    ptrdiff_t f = 0;
    for (; f + 4 <= nf; f += 4)
        CD_FN(gw_tile_4)(xp, hp, wp, top + f * p, cg, kh, kw, sh, dh, dw, gw + f * k, oh, ow);
    for (; f < nf; f++)
        CD_FN(gw_tile_1)(xp, hp, wp, top + f * p, cg, kh, kw, sh, dh, dw, gw + f * k, oh, ow);
}
