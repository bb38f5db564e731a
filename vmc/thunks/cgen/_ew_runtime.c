/* The elementwise kernels' shared driver (vmc_ew_runtime.h) and the large
 * block cache (vmc_blocks.h), built with the package by setup.py as
 * vmc.thunks.cgen._ew_runtime: it is the same for every kernel, so no process
 * compiles it at run time. Generated kernels are plain C libraries (see
 * vmc_elemwise.h): `load` opens one, `thunk` makes the VM thunk of one of its
 * kernels. A library is closed when the last object that holds it goes: its
 * table capsule, held by the Python side while a function uses it and by every
 * thunk ctx made from it (whose descriptor lives in the library).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <dlfcn.h>
#include <stddef.h>
#include "vmc_thunk.h"
#include "vmc_ew_runtime.h"

/* kernels see numpy's types through vmc_types.h: the sizes must agree */
_Static_assert(sizeof(npy_intp) == sizeof(ptrdiff_t), "npy_intp is not ptrdiff_t");
_Static_assert(sizeof(npy_bool) == 1, "npy_bool is not one byte");

#ifndef VMC_HEADERS_DIGEST
#define VMC_HEADERS_DIGEST ""
#endif
#define TABLE_CAPSULE "vmc_kernel_table"

static void table_destroy(PyObject *cap) {
    void *h = PyCapsule_GetContext(cap);
    if (h) dlclose(h);
}

static PyObject *load(PyObject *self, PyObject *arg) {
    const char *path = PyUnicode_AsUTF8(arg);
    if (!path) return NULL;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return PyErr_Format(PyExc_ImportError, "cannot load kernel library %s: %s",
                                path, dlerror());
    void *table = dlsym(h, "vmc_kernels");
    if (!table) {
        dlclose(h);
        return PyErr_Format(PyExc_ImportError, "%s has no vmc_kernels table", path);
    }
    PyObject *cap = PyCapsule_New(table, TABLE_CAPSULE, table_destroy);
    if (!cap || PyCapsule_SetContext(cap, h) < 0) {
        Py_XDECREF(cap);            /* no context yet: the destructor closes nothing */
        dlclose(h);
        return NULL;
    }
    return cap;
}

static void ctx_destroy(PyObject *cap) {
    vmc_ew_ctx *c = (vmc_ew_ctx *)PyCapsule_GetPointer(cap, VMC_CTX_CAPSULE);
    if (!c) return;
    for (int k = 0; k < c->d->nout; k++) Py_CLEAR(c->buf[k]);
    Py_CLEAR(c->lib);               /* last: c->d points into the library */
    Py_CLEAR(c->lib_prev);
    PyMem_Free(c);
}

static PyObject *thunk(PyObject *self, PyObject *args) {
    PyObject *cap;
    Py_ssize_t i, n = 0;
    if (!PyArg_ParseTuple(args, "O!n", &PyCapsule_Type, &cap, &i)) return NULL;
    const vmc_ew_desc *const *table = PyCapsule_GetPointer(cap, TABLE_CAPSULE);
    if (!table) return NULL;
    while (table[n]) n++;
    if (i < 0 || i >= n) return PyErr_Format(PyExc_IndexError, "no kernel %zd of %zd", i, n);
    const vmc_ew_desc *d = table[i];
    vmc_ew_ctx *c = PyMem_Calloc(1, sizeof(vmc_ew_ctx) + (size_t)d->nout * sizeof(PyObject *));
    if (!c) return PyErr_NoMemory();
    c->d = d;
    c->lib = cap;
    Py_INCREF(cap);
    PyObject *ctx = PyCapsule_New(c, VMC_CTX_CAPSULE, ctx_destroy);
    if (!ctx) { Py_DECREF(cap); PyMem_Free(c); return NULL; }
    PyObject *fn = PyCapsule_New((void *)vmc_ew_thunk, VMC_THUNK_CAPSULE, NULL);
    if (!fn) { Py_DECREF(ctx); return NULL; }
    return Py_BuildValue("NN", fn, ctx);
}

static vmc_ew_ctx *ew_ctx(PyObject *fn, PyObject *ctx) {
    /* the context of an elementwise thunk, or NULL (no error) for another thunk */
    if (!PyCapsule_IsValid(fn, VMC_THUNK_CAPSULE) || !PyCapsule_IsValid(ctx, VMC_CTX_CAPSULE) ||
        PyCapsule_GetPointer(fn, VMC_THUNK_CAPSULE) != (void *)vmc_ew_thunk)
        return NULL;
    return (vmc_ew_ctx *)PyCapsule_GetPointer(ctx, VMC_CTX_CAPSULE);
}

/* Point a thunk's context at kernel i of another table: the same kernel built
 * otherwise (tier 2 of a long kernel). Called with the GIL, which every call
 * holds when it reads its descriptor. */
static PyObject *retarget(PyObject *self, PyObject *args) {
    PyObject *ctx, *cap;
    Py_ssize_t i, n = 0;
    if (!PyArg_ParseTuple(args, "OO!n", &ctx, &PyCapsule_Type, &cap, &i)) return NULL;
    vmc_ew_ctx *c = (vmc_ew_ctx *)PyCapsule_GetPointer(ctx, VMC_CTX_CAPSULE);
    const vmc_ew_desc *const *table = PyCapsule_GetPointer(cap, TABLE_CAPSULE);
    if (!c || !table) return NULL;
    while (table[n]) n++;
    if (i < 0 || i >= n) return PyErr_Format(PyExc_IndexError, "no kernel %zd of %zd", i, n);
    const vmc_ew_desc *d = table[i], *o = c->d;
    if (d->nin != o->nin || d->nout != o->nout || d->nd != o->nd || d->reduce != o->reduce ||
        d->reuse_max != o->reuse_max || strcmp(d->label, o->label) != 0)
        return PyErr_Format(PyExc_ValueError, "retarget: kernel %s is not %s", d->label, o->label);
    c->d = d;
    /* d now lives in cap's library; the old one stays loaded while the ctx does
     * (a call that released the GIL may still run its code) */
    Py_XDECREF(c->lib_prev);
    c->lib_prev = c->lib;
    Py_INCREF(cap);
    c->lib = cap;
    __atomic_store_n(&c->cost.samples, 0, __ATOMIC_RELAXED);   /* learn the new form's cost */
    __atomic_store_n(&c->cost.ps, 0ull, __ATOMIC_RELAXED);
    Py_RETURN_NONE;
}

static PyObject *tier_calls(PyObject *self, PyObject *args) {
    PyObject *fn, *ctx;
    if (!PyArg_ParseTuple(args, "OO", &fn, &ctx)) return NULL;
    vmc_ew_ctx *c = ew_ctx(fn, ctx);
    if (!c || !c->d->tier) Py_RETURN_NONE;
    return Py_BuildValue("KK", c->calls[0], c->calls[1]);
}

static PyObject *thunk_cost(PyObject *self, PyObject *args) {
    PyObject *fn, *ctx;
    if (!PyArg_ParseTuple(args, "OO", &fn, &ctx)) return NULL;
    vmc_ew_ctx *c = ew_ctx(fn, ctx);
    if (!c) Py_RETURN_NONE;
    return Py_BuildValue("(Ki)", __atomic_load_n(&c->cost.ps, __ATOMIC_RELAXED),
                         __atomic_load_n(&c->cost.samples, __ATOMIC_RELAXED));
}

static PyObject *empty(PyObject *self, PyObject *args) {
    PyArray_Dims shape = {NULL, 0};
    int type;
    if (!PyArg_ParseTuple(args, "O&i", PyArray_IntpConverter, &shape, &type)) return NULL;
    PyObject *a = (PyObject *)vmc_blocks_new_array(shape.len, shape.ptr, type);
    PyDimMem_FREE(shape.ptr);
    return a;
}

static PyObject *block_cache_info(PyObject *self, PyObject *unused) {
    return Py_BuildValue("{s:i,s:n,s:n,s:K,s:K}", "blocks", vmc__nblocks,
                         "bytes", (Py_ssize_t)vmc__cached_bytes, "cap", (Py_ssize_t)vmc_blocks_cap,
                         "hits", vmc__block_hits, "misses", vmc__block_misses);
}

static PyObject *block_cache_release(PyObject *self, PyObject *unused) {
    vmc_blocks_release();
    Py_RETURN_NONE;
}

static PyObject *block_cache_set_cap(PyObject *self, PyObject *arg) {
    Py_ssize_t cap = PyLong_AsSsize_t(arg);
    if (cap == -1 && PyErr_Occurred()) return NULL;
    if (cap < 0) { PyErr_SetString(PyExc_ValueError, "block cache cap must be >= 0"); return NULL; }
    vmc_blocks_cap = (size_t)cap;
    while (vmc__nblocks && vmc__cached_bytes > vmc_blocks_cap) vmc__block_drop(0);
    Py_RETURN_NONE;
}

static PyObject *set_threads(PyObject *self, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1 || n > VMC_POOL_MAX) {
        PyErr_Format(PyExc_ValueError, "threads must be in [1, %d], got %ld", VMC_POOL_MAX, n);
        return NULL;
    }
    vmc_pool_set_threads((int)n);
    Py_RETURN_NONE;
}

/* For tests and tuning: the pool's round trip in ns, kept until the thread count
 * changes (0: measure it on next use). */
static PyObject *set_round_trip(PyObject *self, PyObject *arg) {
    unsigned long long ns = PyLong_AsUnsignedLongLong(arg);
    if (ns == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    __atomic_store_n(&vmc__pool_rt_at, 0ull, __ATOMIC_RELEASE);
    __atomic_store_n(&vmc__pool_rt_ns, ns, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

/* The pool's timeline (vmc_pool_trace.h): a function that keeps a trace turns
 * it on for each of its elementwise thunks. */
static PyObject *set_pool_trace(PyObject *self, PyObject *args) {
    PyObject *fn, *ctx;
    int on;
    if (!PyArg_ParseTuple(args, "OOp", &fn, &ctx, &on)) return NULL;
    vmc_ew_ctx *c = ew_ctx(fn, ctx);
    if (!c) Py_RETURN_FALSE;
    if (on && vmc_ptrace_alloc() < 0) return PyErr_NoMemory();
    c->traced = on;
    Py_RETURN_TRUE;
}

static PyObject *pool_trace(PyObject *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"clear", NULL};
    int clear = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p", names, &clear)) return NULL;
    if (!__atomic_load_n(&vmc__ptrace, __ATOMIC_ACQUIRE)) return PyBytes_FromStringAndSize("", 0);
    vmc_pool_event *rows = PyMem_Malloc((size_t)VMC_PTRACE_CAP * sizeof(vmc_pool_event));
    if (!rows) return PyErr_NoMemory();
    long n = vmc_ptrace_read(rows, clear);
    PyObject *b = PyBytes_FromStringAndSize((char *)rows, (Py_ssize_t)(n * sizeof *rows));
    PyMem_Free(rows);
    return b;
}

static void empty_task(void *arg, long t) { (void)arg; (void)t; }

/* For bench/: ns that `jobs` jobs of `ntasks` empty tasks take on the pool,
 * traced or not (what a task costs the pool, and what recording it adds). */
static PyObject *pool_time(PyObject *self, PyObject *args) {
    long ntasks, jobs;
    int traced;
    if (!PyArg_ParseTuple(args, "llp", &ntasks, &jobs, &traced)) return NULL;
    if (ntasks < 1 || jobs < 1) {
        PyErr_SetString(PyExc_ValueError, "pool_time: ntasks and jobs must be >= 1");
        return NULL;
    }
    if (traced && vmc_ptrace_alloc() < 0) return PyErr_NoMemory();
    vmc_pool_tag tag = {1, ntasks};
    unsigned long long t0, t1;
    Py_BEGIN_ALLOW_THREADS
    t0 = vmc_now_ns();
    for (long k = 0; k < jobs; k++) vmc_pool_run(empty_task, NULL, ntasks, traced ? &tag : NULL);
    t1 = vmc_now_ns();
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLongLong(t1 - t0);
}

static PyObject *pool_info(PyObject *self, PyObject *unused) {
    return Py_BuildValue("{s:i,s:i,s:k,s:L,s:n,s:K,s:n,s:n,s:i,s:n}", "threads",
                         vmc_pool_threads, "workers_started", vmc__pool.started,
                         "jobs", vmc_pool_jobs,
                         "traced_jobs", (long long)__atomic_load_n(&vmc__ptrace_jobs, __ATOMIC_RELAXED),
                         "trace_capacity", (Py_ssize_t)(vmc__ptrace ? VMC_PTRACE_CAP : 0),
                         "round_trip_ns", __atomic_load_n(&vmc__pool_rt_ns, __ATOMIC_ACQUIRE),
                         "floor", (Py_ssize_t)VMC_PAR_FLOOR, "chunk", (Py_ssize_t)VMC_CHUNK,
                         "gain", VMC_PAR_GAIN, "max_tasks", (Py_ssize_t)VMC_MAX_TASKS);
}

/* A forked child has none of the parent's workers, and a worker may have held
 * the pool's mutex at the fork. */
static void pool_after_fork(void) {
    pthread_mutex_init(&vmc__pool.mu, NULL);
    pthread_cond_init(&vmc__pool.go, NULL);
    pthread_cond_init(&vmc__pool.done, NULL);
    vmc__pool.started = vmc__pool.busy = vmc__pool.active = vmc__pool.joined = 0;
    vmc__pool.want = 0;
    vmc__pool_rt_ns = 0;
    vmc__pool_measuring = 0;
}

static PyMethodDef methods[] = {
    {"set_threads", set_threads, METH_O,
     "set_threads(n): threads that split large kernels and full reductions (config.threads)"},
    {"set_round_trip", set_round_trip, METH_O,
     "set_round_trip(ns): the pool's round trip as if measured (0: measure it on next use)"},
    {"pool_info", pool_info, METH_NOARGS,
     "pool_info(): threads, workers started, jobs run on the pool, jobs traced, rows the "
     "task trace holds (0: never asked for), its measured round trip (0: not yet), the floor below which calls are never split, the partial-reduction "
     "chunk, the gain (a call is split when it takes at least gain round trips alone)"},
    {"set_pool_trace", set_pool_trace, METH_VARARGS,
     "set_pool_trace(fn, ctx, on): whether an elementwise thunk's split calls record their "
     "pool tasks (for the timeline); False for another thunk"},
    {"pool_trace", (PyCFunction)(void (*)(void))pool_trace, METH_VARARGS | METH_KEYWORDS,
     "pool_trace(clear=False): the recorded pool tasks since the last clear, oldest first, "
     "as bytes of rows (vmc.thunks.pool_trace.POOL_EVENT)"},
    {"pool_time", pool_time, METH_VARARGS,
     "pool_time(ntasks, jobs, traced): ns that jobs of ntasks empty tasks take on the pool"},
    {"load", load, METH_O, "load(path): open a kernel library; its table, in a capsule"},
    {"retarget", retarget, METH_VARARGS,
     "retarget(ctx, table, i): a thunk runs kernel i of table from now on (the same kernel)"},
    {"thunk_cost", thunk_cost, METH_VARARGS,
     "thunk_cost(fn, ctx): (picoseconds per element, timed calls) an elementwise thunk "
     "learned, else None"},
    {"tier_calls", tier_calls, METH_VARARGS,
     "tier_calls(fn, ctx): (calls on tier 1, on tier 2) of a long kernel's thunk, else None"},
    {"thunk", thunk, METH_VARARGS, "thunk(table, i): (fn, ctx) capsules of kernel i's thunk"},
    {"empty", empty, METH_VARARGS,
     "empty(shape, typenum): a new C-contiguous array, large ones from the block cache"},
    {"block_cache_info", block_cache_info, METH_NOARGS,
     "block_cache_info(): blocks and bytes held, cap, hits and misses"},
    {"block_cache_release", block_cache_release, METH_NOARGS,
     "block_cache_release(): return every cached block to the OS"},
    {"block_cache_set_cap", block_cache_set_cap, METH_O,
     "block_cache_set_cap(nbytes): the most bytes the cache may hold"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_ew_runtime", NULL, -1, methods};

PyMODINIT_FUNC PyInit__ew_runtime(void) {
    import_array();
    pthread_atfork(NULL, NULL, pool_after_fork);
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    /* for extensions that allocate outputs too (vmc.thunks._blas) */
    PyObject *cap = PyCapsule_New((void *)vmc_blocks_new_array, "vmc_new_array", NULL);
    if (!cap || PyModule_AddObject(m, "new_array", cap) < 0) {
        Py_XDECREF(cap);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddStringConstant(m, "headers_digest", VMC_HEADERS_DIGEST) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
