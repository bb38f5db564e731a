/* vmc_ew_runtime.h: the generic driver of elementwise kernels (see
 * vmc_elemwise.h). Included by exactly one module, _ew_runtime.c (built with
 * the package), which loads kernel libraries and makes their thunks: each
 * thunk is vmc_ew_thunk with a vmc_ew_ctx naming its kernel's descriptor.
 */
#ifndef VMC_EW_RUNTIME_H
#define VMC_EW_RUNTIME_H
#include "vmc_elemwise.h"
#include "vmc_blocks.h"
#include "vmc_pool.h"
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* "i0 (3, 4), i1 (1, 5)" into buf. */
static void vmc__shapes(char *buf, size_t cap, PyArrayObject **in, int nin) {
    size_t len = 0;
    buf[0] = 0;
    for (int j = 0; j < nin && len + 64 < cap; j++) {
        len += snprintf(buf + len, cap - len, "%si%d (", j ? ", " : "", j);
        for (int a = 0; a < PyArray_NDIM(in[j]) && len + 32 < cap; a++)
            len += snprintf(buf + len, cap - len, "%s%ld", a ? ", " : "",
                            (long)PyArray_DIM(in[j], a));
        len += snprintf(buf + len, cap - len, PyArray_NDIM(in[j]) == 1 ? ",)" : ")");
    }
}

static int vmc__bad_shapes(const vmc_ew_desc *d, PyArrayObject **in) {
    char shapes[2048], pattern[512];
    size_t len = 0;
    vmc__shapes(shapes, sizeof shapes, in, d->nin);
    for (int j = 0; j < d->nin && len + 80 < sizeof pattern; j++) {
        len += snprintf(pattern + len, sizeof pattern - len, "%si%d (", j ? ", " : "", j);
        for (int a = 0; a < d->nd; a++)
            len += snprintf(pattern + len, sizeof pattern - len, "%s%s", a ? ", " : "",
                            d->bcast[j * d->nd + a] ? "1" : "n");
        len += snprintf(pattern + len, sizeof pattern - len, ")");
    }
    PyErr_Format(PyExc_ValueError,
                 "elemwise kernel %s: input shapes %s do not fit its broadcast pattern %s "
                 "(only dims of static length 1 broadcast; the others must agree)",
                 d->label, shapes, pattern);
    return -1;
}

static void vmc__extent(PyArrayObject *a, char **lo, char **hi) {
    char *l = PyArray_BYTES(a), *h = l;
    for (int k = 0; k < PyArray_NDIM(a); k++) {
        npy_intp span = (PyArray_DIM(a, k) - 1) * PyArray_STRIDE(a, k);
        if (PyArray_DIM(a, k) == 0) { *lo = *hi = l; return; }
        if (span < 0) l += span; else h += span;
    }
    *lo = l;
    *hi = h + PyArray_ITEMSIZE(a);
}

/* May output k be written into input j? Same dtype and shape, C-contiguous,
 * writeable, and no other input overlaps it except as the identical view. */
static int vmc__can_alias(const vmc_ew_desc *d, PyArrayObject **in, int j, int type,
                          int ond, const npy_intp *oshape) {
    PyArrayObject *a = in[j];
    if (PyArray_TYPE(a) != type || PyArray_NDIM(a) != ond || !PyArray_IS_C_CONTIGUOUS(a)
        || !PyArray_ISWRITEABLE(a) || !PyArray_ISALIGNED(a))
        return 0;
    for (int k = 0; k < ond; k++)
        if (PyArray_DIM(a, k) != oshape[k]) return 0;
    char *lo, *hi, *lo2, *hi2;
    vmc__extent(a, &lo, &hi);
    for (int i = 0; i < d->nin; i++) {
        PyArrayObject *b = in[i];
        if (i == j || b == a) continue;
        vmc__extent(b, &lo2, &hi2);
        if (lo2 >= hi || lo >= hi2) continue;
        if (PyArray_BYTES(b) == PyArray_BYTES(a) && PyArray_NDIM(b) == ond
            && PyArray_IS_C_CONTIGUOUS(b) && PyArray_ITEMSIZE(b) == PyArray_ITEMSIZE(a)) {
            int same = 1;
            for (int k = 0; k < ond; k++) same &= PyArray_DIM(b, k) == oshape[k];
            if (same) continue;
        }
        return 0;
    }
    return 1;
}

/* Output k: the in-place input, the ctx's buffer when only the ctx holds it
 * (then nobody can see it overwritten), or a new C-contiguous array (a large
 * one from the block cache, vmc_blocks.h). */
static PyArrayObject *vmc__output(const vmc_ew_desc *d, PyObject **ctxbuf, int k,
                                  PyArrayObject **in, npy_bool *taken, int ond,
                                  npy_intp *oshape) {
    int type = d->out_types[k], j = d->inplace[k];
    if (!d->reduce && j >= 0 && !taken[j] && vmc__can_alias(d, in, j, type, ond, oshape)) {
        taken[j] = 1;
        Py_INCREF(in[j]);
        return in[j];
    }
    PyArrayObject *b = ctxbuf ? (PyArrayObject *)ctxbuf[k] : NULL;
    if (b && Py_REFCNT(b) == 1 && PyArray_TYPE(b) == type && PyArray_NDIM(b) == ond) {
        int same = 1;
        for (int a = 0; a < ond; a++) same &= PyArray_DIM(b, a) == oshape[a];
        if (same) { Py_INCREF(b); return b; }
    }
    PyArrayObject *o = vmc_blocks_new_array(ond, oshape, type);
    if (o && ctxbuf) {
        if (PyArray_NBYTES(o) <= d->reuse_max) { Py_INCREF(o); Py_XSETREF(ctxbuf[k], (PyObject *)o); }
        else Py_CLEAR(ctxbuf[k]);
    }
    return o;
}

/* Merge dimensions that are contiguous for every operand and drop extent-1
 * ones; returns the new ndim (>= 1). shape/str are updated in place. */
static int vmc__collapse(int nd, int nops, npy_intp *shape, npy_intp (*str)[VMC_MAXDIM]) {
    int m = 0;
    for (int a = 0; a < nd; a++) {
        if (shape[a] == 1) continue;
        int merge = m > 0;
        for (int o = 0; o < nops && merge; o++)
            merge = str[o][m - 1] == str[o][a] * shape[a];
        if (merge) {
            shape[m - 1] *= shape[a];
            for (int o = 0; o < nops; o++) str[o][m - 1] = str[o][a];
        } else {
            shape[m] = shape[a];
            for (int o = 0; o < nops; o++) str[o][m] = str[o][a];
            m++;
        }
    }
    if (m == 0) {
        shape[0] = 1;
        for (int o = 0; o < nops; o++) str[o][0] = 0;
        m = 1;
    }
    return m;
}

/* Walk all but the last of `nd` dims, calling the row loop for each. */
static void vmc__walk(const vmc_ew_desc *d, int nd, int nops, const npy_intp *shape,
                      npy_intp (*str)[VMC_MAXDIM], char **base, int use_row, int acc_row) {
    npy_intp idx[VMC_MAXDIM] = {0}, inner[VMC_MAXOPS];
    char *p[VMC_MAXOPS];
    npy_intp n = shape[nd - 1];
    for (int o = 0; o < nops; o++) { p[o] = base[o]; inner[o] = str[o][nd - 1]; }
    for (;;) {
        if (!d->reduce) {
            if (use_row) d->row(n, p); else d->strided(n, p, inner);
        } else if (use_row) {
            if (acc_row) d->rrow(n, p); else d->racc(n, p);
        } else {
            d->rstrided(n, p, inner);
        }
        int a = nd - 2;
        for (; a >= 0; a--) {
            for (int o = 0; o < nops; o++) p[o] += str[o][a];
            if (++idx[a] < shape[a]) break;
            for (int o = 0; o < nops; o++) p[o] -= str[o][a] * shape[a];
            idx[a] = 0;
        }
        if (a < 0) return;
    }
}

/* Inputs as aligned native arrays of the kernel's dtypes: borrowed when they
 * already are, else converted (numpy scalars and Python numbers cast freely;
 * arrays only safely) into owned[j]. */
static int vmc__inputs(const vmc_ew_desc *d, PyObject **regs, const int *ins,
                       PyArrayObject **in, PyObject **owned) {
    for (int j = 0; j < d->nin; j++) {
        PyObject *o = regs[ins[j]];
        if (!o) {
            PyErr_Format(PyExc_RuntimeError, "elemwise kernel %s: input %d is empty", d->label, j);
            return -1;
        }
        if (PyArray_Check(o) && PyArray_TYPE((PyArrayObject *)o) == d->in_types[j]
            && PyArray_ISBEHAVED_RO((PyArrayObject *)o)) {
            in[j] = (PyArrayObject *)o;
            continue;
        }
        int flags = NPY_ARRAY_ALIGNED | NPY_ARRAY_NOTSWAPPED;
        if (!PyArray_Check(o)) flags |= NPY_ARRAY_FORCECAST;
        owned[j] = PyArray_FromAny(o, PyArray_DescrFromType(d->in_types[j]), 0, 0, flags, NULL);
        if (!owned[j]) return -1;
        in[j] = (PyArrayObject *)owned[j];
    }
    return 0;
}

/* Extents of the broadcast result and each input's strides (0 where it
 * broadcasts). An input given with fewer dims is accepted only as a scalar
 * in a position whose dims are all broadcastable. */
static int vmc__broadcast(const vmc_ew_desc *d, PyArrayObject **in, npy_intp *shape,
                          npy_intp (*str)[VMC_MAXDIM]) {
    int nd = d->nd;
    npy_bool seen[VMC_MAXDIM] = {0};
    for (int a = 0; a < nd; a++) shape[a] = 1;
    for (int j = 0; j < d->nin; j++) {
        const npy_bool *bc = d->bcast + j * nd;
        PyArrayObject *x = in[j];
        if (PyArray_NDIM(x) != nd) {
            int all = 1;
            for (int a = 0; a < nd; a++) all &= bc[a];
            if (!all || PyArray_SIZE(x) != 1) return vmc__bad_shapes(d, in);
            for (int a = 0; a < nd; a++) str[j][a] = 0;
            continue;
        }
        for (int a = 0; a < nd; a++) {
            npy_intp e = PyArray_DIM(x, a);
            str[j][a] = e == 1 ? 0 : PyArray_STRIDE(x, a);
            if (bc[a]) {
                if (e != 1) return vmc__bad_shapes(d, in);
            } else if (seen[a] && e != shape[a]) {
                return vmc__bad_shapes(d, in);
            } else {
                shape[a] = e;
                seen[a] = 1;
            }
        }
    }
    return 0;
}

/* Row mode: each input's inner stride is 0 (row-scalar) or its itemsize,
 * as the generated row loop expects; outputs' inner stride is `ostride`. */
static int vmc__row_ok(const vmc_ew_desc *d, int nd, npy_intp (*str)[VMC_MAXDIM],
                       PyArrayObject **in, PyArrayObject **out, int reduced_inner,
                       const npy_intp *shape) {
    if (shape[nd - 1] == 1) return 1;     /* one element: strides never used */
    for (int j = 0; j < d->nin; j++) {
        npy_intp want = (d->nd == 0 || d->bcast[j * d->nd + d->nd - 1]) ? 0 : PyArray_ITEMSIZE(in[j]);
        if (str[j][nd - 1] != want) return 0;
    }
    for (int k = 0; k < d->nout; k++) {
        npy_intp want = reduced_inner ? 0 : PyArray_ITEMSIZE(out[k]);
        if (str[d->nin + k][nd - 1] != want) return 0;
    }
    return 1;
}

/* Streaming stores for outputs too big to stay in cache: an ordinary store
 * first reads the line it writes (x*y + z*0.5 moves 5 arrays' worth of bytes,
 * not 4); a non-temporal one does not. The row loop writes a chunk into an
 * L1-sized buffer, which is then streamed out. Chunks read their inputs before
 * the output chunk is written, so an output aliasing its input stays right. */
#define VMC_STREAM_MIN ((npy_intp)16 << 20)   /* bytes of one output */
#define VMC_STREAM_CHUNK 2048                 /* elements per chunk */
#define VMC_STREAM_MAXOUT 2

#if defined(__SSE2__)
static void vmc__stream_copy(char *dst, const char *src, size_t nbytes) {
    size_t head = (size_t)(-(uintptr_t)dst & 15);
    if (head > nbytes) head = nbytes;
    memcpy(dst, src, head);
    size_t i = head;
    for (; i + 16 <= nbytes; i += 16)
        _mm_stream_si128((__m128i *)(dst + i), _mm_loadu_si128((const __m128i *)(src + i)));
    memcpy(dst + i, src + i, nbytes - i);
}
#define VMC_HAVE_STREAMS 1
#define vmc__stream_fence() _mm_sfence()
#else   /* no portable non-temporal store: the plain row loop */
static void vmc__stream_copy(char *dst, const char *src, size_t nbytes) { memcpy(dst, src, nbytes); }
#define VMC_HAVE_STREAMS 0
#define vmc__stream_fence() ((void)0)
#endif

static int vmc__streams(const vmc_ew_desc *d, int cnd, int use_row, npy_intp n,
                        PyArrayObject **out) {
    if (!VMC_HAVE_STREAMS || d->reduce || !use_row || cnd != 1 || d->nout > VMC_STREAM_MAXOUT)
        return 0;
    for (int k = 0; k < d->nout; k++)
        if (n * PyArray_ITEMSIZE(out[k]) < VMC_STREAM_MIN) return 0;
    return 1;
}

static void vmc__stream_row(const vmc_ew_desc *d, npy_intp n, npy_intp (*str)[VMC_MAXDIM],
                            char **base, PyArrayObject **out) {
    double buf[VMC_STREAM_MAXOUT][VMC_STREAM_CHUNK];   /* 8-byte items at most */
    char *p[VMC_MAXOPS];
    npy_intp item[VMC_STREAM_MAXOUT];
    for (int k = 0; k < d->nout; k++) {
        item[k] = PyArray_ITEMSIZE(out[k]);
        p[d->nin + k] = (char *)buf[k];
    }
    for (npy_intp b = 0; b < n; b += VMC_STREAM_CHUNK) {
        npy_intp m = n - b < VMC_STREAM_CHUNK ? n - b : VMC_STREAM_CHUNK;
        for (int j = 0; j < d->nin; j++) p[j] = base[j] + b * str[j][0];
        d->row(m, p);
        for (int k = 0; k < d->nout; k++)
            vmc__stream_copy(base[d->nin + k] + b * item[k], (char *)buf[k], (size_t)(m * item[k]));
    }
    vmc__stream_fence();
}

/* ---- splitting one kernel call across the pool (vmc_pool.h) ----
 * A job cuts the collapsed iteration space along one axis into tasks:
 * - "box" tasks own disjoint outputs (an elementwise kernel, or a reduction
 *   cut along an axis it does not reduce): each output element is computed
 *   exactly as one thread would, so any thread count gives the same bits;
 *   used when the call's work is worth it (vmc__parallel).
 * - "partial" tasks reduce fixed chunks of a full reduction (one output
 *   element) into partial results, folded in task order with the kernel's own
 *   accumulate (rcombine). The chunks depend on the shape only, never on the
 *   thread count, and are used with one thread too (on the pool when the
 *   work is worth it, else one after the other).
 *
 * When to split is measured, not guessed: a thunk times its first calls that
 * the pool could split, run alone, and keeps the least time per element
 * (vmc_cost); the pool measures its round trip (vmc_pool.h). A call goes to
 * the pool when its predicted time alone is at least VMC_PAR_GAIN round
 * trips: with two threads it then takes at most (1/2 + 1/GAIN) of it. So a
 * cheap kernel stays on the calling thread longer than a costly one, and a
 * machine whose cores are busy (a long round trip) splits less. */
#define VMC_CHUNK ((npy_intp)1 << 16)     /* elements of one partial-reduction chunk */
#define VMC_MAX_TASKS 256
#define VMC_PART_MAXOUT 4
#define VMC_PAR_FLOOR ((npy_intp)1 << 12) /* smaller calls are never split, nor timed */
#define VMC_PAR_GAIN 4
#define VMC_COST_SAMPLES 3

/* A thunk's learned cost: picoseconds per element, the least of its timed calls. */
typedef struct {
    unsigned long long ps;
    int samples;
} vmc_cost;

/* Whether a call of n elements runs on the pool; *timed: run it alone, timed. */
static int vmc__parallel(vmc_cost *c, npy_intp n, int *timed) {
    *timed = 0;
    if (!c || vmc_pool_threads <= 1 || n < VMC_PAR_FLOOR) return 0;
    if (__atomic_load_n(&c->samples, __ATOMIC_RELAXED) < VMC_COST_SAMPLES) {
        *timed = 1;
        return 0;
    }
    unsigned long long rt = vmc_pool_round_trip_ns();
    double alone_ns = (double)n * (double)__atomic_load_n(&c->ps, __ATOMIC_RELAXED) / 1000.0;
    return rt && alone_ns >= (double)VMC_PAR_GAIN * (double)rt;
}

static void vmc__learn(vmc_cost *c, npy_intp n, unsigned long long ns) {
    unsigned long long ps = ns * 1000ull / (unsigned long long)n, old;
    if (!ps) ps = 1;
    old = __atomic_load_n(&c->ps, __ATOMIC_RELAXED);
    if (!old || ps < old) __atomic_store_n(&c->ps, ps, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->samples, 1, __ATOMIC_RELAXED);
}

typedef struct {
    const vmc_ew_desc *d;
    int cnd, nops, use_row, reduced_inner, streams, axis;
    npy_intp *shape, span;
    npy_intp (*str)[VMC_MAXDIM];
    char **base;
    PyArrayObject **out;
    double (*part)[VMC_PART_MAXOUT][2];   /* partial results, 16 bytes each */
} vmc__job;

static void vmc__task(void *arg, long t) {
    vmc__job *j = (vmc__job *)arg;
    const vmc_ew_desc *d = j->d;
    npy_intp shape[VMC_MAXDIM], lo = (npy_intp)t * j->span, hi = lo + j->span;
    char *base[VMC_MAXOPS];
    if (hi > j->shape[j->axis]) hi = j->shape[j->axis];
    for (int a = 0; a < j->cnd; a++) shape[a] = j->shape[a];
    shape[j->axis] = hi - lo;
    for (int o = 0; o < j->nops; o++) base[o] = j->base[o] + lo * j->str[o][j->axis];
    if (j->part) {
        for (int k = 0; k < d->nout; k++) base[d->nin + k] = (char *)j->part[t][k];
        d->rinit(base + d->nin, 1);
    }
    if (j->streams) vmc__stream_row(d, shape[0], j->str, base, j->out);
    else vmc__walk(d, j->cnd, j->nops, shape, j->str, base, j->use_row, j->reduced_inner);
}

/* Set up j's axis and span; the number of tasks (1: run as one piece). A full
 * reduction is cut the same way whether or not it goes to the pool (par). */
static long vmc__plan(vmc__job *j, npy_intp n, npy_intp nout_elems, int par) {
    const vmc_ew_desc *d = j->d;
    int last = j->cnd - 1, threads = vmc_pool_threads;
    npy_intp inner = 1;
    for (int a = 1; a < j->cnd; a++) inner *= j->shape[a];
    if (d->reduce && nout_elems == 1) {
        if (!d->rcombine || d->nout > VMC_PART_MAXOUT || n <= VMC_CHUNK) return 1;
        j->axis = 0;
        j->span = VMC_CHUNK / inner > 1 ? VMC_CHUNK / inner : 1;
        if ((j->shape[0] + j->span - 1) / j->span > VMC_MAX_TASKS)
            j->span = (j->shape[0] + VMC_MAX_TASKS - 1) / VMC_MAX_TASKS;
        return (long)((j->shape[0] + j->span - 1) / j->span);
    }
    if (!par) return 1;
    npy_intp want = (npy_intp)threads * 4;    /* a few tasks a thread: a late thread catches up */
    int ax = -1;
    for (int a = 0; a <= last && ax < 0; a += last > 0 ? last : 1) {
        int reduced = d->reduce && j->str[d->nin][a] == 0;
        if (!reduced && j->shape[a] >= threads) ax = a;
    }
    if (ax < 0) return 1;
    j->axis = ax;
    npy_intp ext = j->shape[ax], tasks = ext < want ? ext : want;
    j->span = (ext + tasks - 1) / tasks;
    if (ax == last && j->use_row && j->span > 64) j->span = (j->span + 63) / 64 * 64;  /* whole vectors */
    return (long)((ext + j->span - 1) / j->span);
}

/* traced: the pool records the tasks of a split call (vmc_pool_trace.h). */
static void vmc__run(const vmc_ew_desc *d, PyArrayObject **in, PyArrayObject **out,
                     npy_intp *shape, npy_intp (*str)[VMC_MAXDIM], npy_intp n, vmc_cost *cost,
                     int traced) {
    int nops = d->nin + d->nout, nd = d->nd;
    char *base[VMC_MAXOPS];
    for (int j = 0; j < d->nin; j++) base[j] = PyArray_BYTES(in[j]);
    for (int k = 0; k < d->nout; k++) {
        PyArrayObject *o = out[k];
        base[d->nin + k] = PyArray_BYTES(o);
        /* output strides over the kernel's dims: 0 along reduced axes */
        for (int a = 0, b = 0; a < nd; a++) {
            if (d->reduce && d->raxes[a]) { str[d->nin + k][a] = 0; continue; }
            str[d->nin + k][a] = shape[a] == 1 ? 0 : PyArray_STRIDE(o, b);
            b++;
        }
    }
    if (d->reduce) d->rinit(base + d->nin, PyArray_SIZE(out[0]));
    if (n == 0) return;
    int cnd = vmc__collapse(nd, nops, shape, str);
    int reduced_inner = d->reduce && str[d->nin][cnd - 1] == 0;
    int use_row = vmc__row_ok(d, cnd, str, in, out, reduced_inner, shape);
    double part[VMC_MAX_TASKS][VMC_PART_MAXOUT][2];
    vmc__job j = {d, cnd, nops, use_row, reduced_inner, vmc__streams(d, cnd, use_row, n, out),
                  0, shape, 0, str, base, out, NULL};
    npy_intp nout_elems = d->reduce ? PyArray_SIZE(out[0]) : n;
    NPY_BEGIN_THREADS_DEF;
    /* without the GIL also where the pool may be asked: it may measure its round trip */
    if (n >= VMC_GIL_MIN || (vmc_pool_threads > 1 && n >= VMC_PAR_FLOOR)) NPY_BEGIN_THREADS;
    int timed, par = vmc__parallel(cost, n, &timed);
    long ntasks = vmc__plan(&j, n, nout_elems, par);
    unsigned long long t0 = timed ? vmc_now_ns() : 0;
    if (ntasks <= 1) {
        if (j.streams) vmc__stream_row(d, shape[0], str, base, out);
        else vmc__walk(d, cnd, nops, shape, str, base, use_row, reduced_inner);
    } else {
        if (d->reduce && nout_elems == 1) j.part = part;
        vmc_pool_tag tag = {j.span, j.shape[j.axis]};
        if (par) vmc_pool_run(vmc__task, &j, ntasks, traced ? &tag : NULL);
        else for (long t = 0; t < ntasks; t++) vmc__task(&j, t);
        if (j.part)
            for (long t = 0; t < ntasks; t++) {
                char *p[VMC_PART_MAXOUT];
                for (int k = 0; k < d->nout; k++) p[k] = (char *)part[t][k];
                d->rcombine(base + d->nin, p);
            }
    }
    if (timed) vmc__learn(cost, n, vmc_now_ns() - t0);
    NPY_END_THREADS;
}

/* The thunk body: see vmc_thunk.h for the calling convention. */
static int vmc_ew_call(const vmc_ew_desc *d, PyObject **ctxbuf, vmc_cost *cost, int traced,
                       PyObject **regs, const int *ins, const int *outs) {
    PyArrayObject *in[VMC_MAXOPS], *out[VMC_MAXOPS];
    PyObject *owned[VMC_MAXOPS];
    npy_intp shape[VMC_MAXDIM], oshape[VMC_MAXDIM], str[VMC_MAXOPS][VMC_MAXDIM];
    npy_bool taken[VMC_MAXOPS] = {0};
    int nout = d->nout, ond = 0, rc = -1, k = 0;
    for (int j = 0; j < d->nin; j++) owned[j] = NULL;
    if (vmc__inputs(d, regs, ins, in, owned) < 0) goto done;
    if (vmc__broadcast(d, in, shape, str) < 0) goto done;
    npy_intp n = 1, m = 1;
    for (int a = 0; a < d->nd; a++) {
        n *= shape[a];
        if (!(d->reduce && d->raxes[a])) { oshape[ond++] = shape[a]; m *= shape[a]; }
    }
    if (d->reduce && n == 0 && m != 0 && d->reduce_name[0] != 'a') {
        PyErr_Format(PyExc_ValueError, "elemwise kernel %s: zero-size array to reduction "
                     "operation %s which has no identity", d->label, d->reduce_name);
        goto done;
    }
    for (k = 0; k < nout; k++)
        if (!(out[k] = vmc__output(d, ctxbuf, k, in, taken, ond, oshape))) goto done;
    vmc__run(d, in, out, shape, str, n, cost, traced);
    for (k = 0; k < nout; k++) Py_XSETREF(regs[outs[k]], (PyObject *)out[k]);
    rc = 0;
done:
    if (rc < 0) for (int i = 0; i < k; i++) Py_DECREF(out[i]);
    for (int j = 0; j < d->nin; j++) Py_XDECREF(owned[j]);
    return rc;
}

/* A thunk's private data: its kernel, the calls run on each tier of a long
 * kernel, its learned cost, and the output buffers kept for reuse. d changes
 * once, from tier 1 to tier 2 (_ew_runtime.retarget, with the GIL held, as every
 * call reads it; the cost is learned again). */
typedef struct {
    const vmc_ew_desc *d;
    unsigned long long calls[2];
    PyObject *lib;              /* the library d lives in: closed after the last ctx */
    PyObject *lib_prev;         /* the one before a retarget (a call may still run it) */
    vmc_cost cost;
    int traced;                 /* its function keeps a timeline: record pool tasks */
    PyObject *buf[];
} vmc_ew_ctx;

static int vmc_ew_thunk(void *ctx, PyObject **regs, const int *ins, const int *outs) {
    vmc_ew_ctx *c = (vmc_ew_ctx *)ctx;
    const vmc_ew_desc *d = c->d;
    if (d->tier) c->calls[d->tier - 1]++;
    return vmc_ew_call(d, c->buf, &c->cost, c->traced, regs, ins, outs);
}

#endif /* VMC_EW_RUNTIME_H */
