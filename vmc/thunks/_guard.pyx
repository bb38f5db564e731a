"""NanGuardMode's check, in C: the first NaN, infinity or big value (|v| > 1e10)
of an array, and a C thunk that runs another C thunk and then checks what it
wrote, so that guarding a generated kernel adds one pass over its outputs and
no Python.

``first_bad(a, flags)`` is the same check for Python callers (the Python
thunks' guard): ``None``, or ``(what, index)`` with ``what`` one of "NaN",
"inf", "big" and ``index`` the multi-index of the first bad element in C
order. Arrays of other dtypes (integers, bool, float16, objects) pass.
"""
cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_New
from cpython.ref cimport PyObject
from libc.stdlib cimport calloc, free

cnp.import_array()

# Flags: which values are errors (NanGuardMode's nan_is_error, inf_is_error,
# big_is_error).
NAN, INF, BIG = 1, 2, 4
_WHAT = {1: "NaN", 2: "inf", 4: "big"}


class NanGuardError(AssertionError):
    """A thunk of a function compiled in NanGuardMode wrote a NaN, an infinity
    or a big value (an AssertionError, as Theano's NanGuardMode raised)."""


cdef extern from *:
    """
    #include <math.h>
    #include <numpy/arrayobject.h>
    #define VMC_BIG 1e10
    #define VMC_CHUNK 256
    /* The scans are built for the widest vector ISA the CPU has, chosen at load
       time (the module itself is built for the baseline): 4x faster than SSE2. */
    #if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
    #define VMC_GUARD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
    #else
    #define VMC_GUARD_CLONES
    #endif

    /* The kind of v (1 NaN, 2 inf, 4 big) when it is an error under flags, else 0. */
    static inline int vmc_guard_kind(double v, int flags) {
        if (v != v) return flags & 1;
        if (isinf(v)) return (flags & 2) ? 2 : (flags & 4);
        return (fabs(v) > VMC_BIG) ? (flags & 4) : 0;
    }

    /* Scan n values of type T, stride s bytes: the position of the first error
       or -1. Chunks of contiguous values are first tested with one branch-free
       pass that the compiler vectorizes; only a chunk with a candidate is
       walked again. lim: values whose magnitude is below it are never errors. */
    #define VMC_GUARD_SCAN(NAME, T) \\
    VMC_GUARD_CLONES static npy_intp NAME(const char *p, npy_intp n, npy_intp s, int flags, double lim, \\
                         int *kind) { \\
        npy_intp i = 0; \\
        if (s == (npy_intp)sizeof(T)) { \\
            const T *x = (const T *)p; \\
            for (; i + VMC_CHUNK <= n; i += VMC_CHUNK) { \\
                int cand = 0; \\
                for (int j = 0; j < VMC_CHUNK; j++) \\
                    cand |= !(fabs((double)x[i + j]) < lim); \\
                if (!cand) continue; \\
                for (int j = 0; j < VMC_CHUNK; j++) \\
                    if ((*kind = vmc_guard_kind((double)x[i + j], flags))) return i + j; \\
            } \\
        } \\
        for (; i < n; i++) { \\
            double v = (double)*(const T *)(p + i * s); \\
            if (!(fabs(v) < lim) && (*kind = vmc_guard_kind(v, flags))) return i; \\
        } \\
        return -1; \\
    }
    VMC_GUARD_SCAN(vmc_guard_scan_f32, float)
    VMC_GUARD_SCAN(vmc_guard_scan_f64, double)

    /* The first bad element of a (0 when none, 1 when found with *kind and
       index[ndim] set, -1 when the dtype is not checked). A complex value is
       two values of its part's type. */
    static int vmc_guard_first_bad(PyArrayObject *a, int flags, npy_intp *index, int *kind) {
        int nd = PyArray_NDIM(a), t = PyArray_TYPE(a), d;
        npy_intp *dims = PyArray_DIMS(a), *st = PyArray_STRIDES(a);
        npy_intp item = PyArray_ITEMSIZE(a), size = PyArray_SIZE(a), k, j, at;
        npy_intp (*scan)(const char *, npy_intp, npy_intp, int, double, int *);
        npy_intp count[NPY_MAXDIMS];
        double lim = (flags & 4) ? VMC_BIG : INFINITY;   /* NaN and inf fail < INFINITY */
        int parts = (t == NPY_CFLOAT || t == NPY_CDOUBLE) ? 2 : 1;
        const char *p = PyArray_BYTES(a);
        if (t == NPY_FLOAT || t == NPY_CFLOAT) scan = vmc_guard_scan_f32;
        else if (t == NPY_DOUBLE || t == NPY_CDOUBLE) scan = vmc_guard_scan_f64;
        else return -1;
        if (size == 0) return 0;
        if (nd == 0 || PyArray_IS_C_CONTIGUOUS(a)) {      /* one run */
            at = scan(p, size * parts, item / parts, flags, lim, kind);
            if (at < 0) return 0;
            at /= parts;
            for (d = nd - 1; d >= 0; d--) { index[d] = at % dims[d]; at /= dims[d]; }
            return 1;
        }
        /* any strides: rows along the last dim, the other dims counted */
        for (d = 0; d < nd; d++) count[d] = 0;
        for (k = 0; k < size / dims[nd - 1]; k++) {
            const char *row = p;
            for (d = 0; d < nd - 1; d++) row += count[d] * st[d];
            if (parts == 1 || st[nd - 1] == item) {
                at = scan(row, dims[nd - 1] * parts, parts == 1 ? st[nd - 1] : item / 2,
                          flags, lim, kind);
            } else {                        /* strided complex: value by value */
                for (at = -1, j = 0; j < dims[nd - 1] && at < 0; j++)
                    if (scan(row + j * st[nd - 1], 2, item / 2, flags, lim, kind) >= 0)
                        at = 2 * j;
            }
            if (at >= 0) {
                for (d = 0; d < nd - 1; d++) index[d] = count[d];
                index[nd - 1] = at / parts;
                return 1;
            }
            for (d = nd - 2; d >= 0; d--) {
                if (++count[d] < dims[d]) break;
                count[d] = 0;
            }
        }
        return 0;
    }
    """
    int vmc_guard_first_bad(cnp.PyArrayObject *a, int flags, cnp.npy_intp *index,
                            int *kind) noexcept


ctypedef int (*vmc_thunk_fn)(void *ctx, PyObject **regs, const int *ins,
                             const int *outs) noexcept

ctypedef struct GuardCtx:
    vmc_thunk_fn inner      # the guarded C thunk
    void *inner_ctx         # its ctx (kept alive by the CThunk's keepalive)
    int n_out               # outputs to check
    int flags               # NAN | INF | BIG


def first_bad(a, int flags):
    """``None``, or ``(what, index)`` of the first bad element of ``a``."""
    cdef cnp.npy_intp index[cnp.NPY_MAXDIMS]
    cdef int kind = 0
    if not isinstance(a, cnp.ndarray):
        return None
    if vmc_guard_first_bad(<cnp.PyArrayObject*>a, flags, index, &kind) != 1:
        return None
    return _WHAT[kind], tuple([int(index[d]) for d in range(cnp.PyArray_NDIM(a))])


cdef int _report(int k, object value, int flags) except -1:
    bad = first_bad(value, flags)
    what, index = bad
    raise NanGuardError(f"NanGuardMode: {what} in output {k} at index {index} "
                        f"(shape {value.shape}, {value.dtype})")


cdef int _guard(void *ctx, PyObject **regs, const int *ins, const int *outs) except -1:
    cdef GuardCtx *g = <GuardCtx*>ctx
    cdef cnp.npy_intp index[cnp.NPY_MAXDIMS]
    cdef int k, kind
    cdef PyObject *v
    if g.inner(g.inner_ctx, regs, ins, outs) != 0:
        return -1
    for k in range(g.n_out):
        v = regs[outs[k]]
        if v == NULL or not cnp.PyArray_Check(<object>v):
            continue
        if vmc_guard_first_bad(<cnp.PyArrayObject*>v, g.flags, index, &kind) == 1:
            return _report(k, <object>v, g.flags)
    return 0


cdef void _free_ctx(object capsule) noexcept:
    free(PyCapsule_GetPointer(capsule, "vmc_ctx"))


def guard_cthunk(thunk, int n_out, int flags):
    """A CThunk that runs the CThunk ``thunk`` and raises NanGuardError when
    one of its ``n_out`` outputs holds a value ``flags`` calls an error."""
    from vmc.program import CThunk     # here: vmc.program imports nothing of ours
    if not PyCapsule_IsValid(thunk.fn, "vmc_thunk"):
        raise TypeError(f"guard_cthunk: {thunk!r} is not a C thunk")
    cdef GuardCtx *g = <GuardCtx*>calloc(1, sizeof(GuardCtx))
    if g == NULL:
        raise MemoryError()
    g.inner = <vmc_thunk_fn>PyCapsule_GetPointer(thunk.fn, "vmc_thunk")
    g.inner_ctx = (PyCapsule_GetPointer(thunk.ctx, "vmc_ctx")
                   if thunk.ctx is not None else NULL)
    g.n_out, g.flags = n_out, flags
    ctx = PyCapsule_New(g, "vmc_ctx", _free_ctx)
    return CThunk(fn=PyCapsule_New(<void*>_guard, "vmc_thunk", NULL), ctx=ctx,
                  keepalive=thunk)
