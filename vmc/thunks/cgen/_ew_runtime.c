/* The elementwise kernels' shared driver (vmc_ew_runtime.h) and the large
 * block cache (vmc_blocks.h), built with the package by setup.py as
 * vmc.thunks.cgen._ew_runtime: it is the same for every kernel, so no process
 * compiles it at run time. Kernel modules get its table through the
 * "vmc_ew_api" capsule (see vmc_elemwise.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include "vmc_ew_runtime.h"

#ifndef VMC_HEADERS_DIGEST
#define VMC_HEADERS_DIGEST ""
#endif

static PyObject *api(PyObject *self, PyObject *unused) {
    return PyCapsule_New((void *)&VMC_EW_API, "vmc_ew_api", NULL);
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

static PyMethodDef methods[] = {
    {"api", api, METH_NOARGS, "api(): the driver's table, in a capsule named vmc_ew_api"},
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
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    if (PyModule_AddStringConstant(m, "headers_digest", VMC_HEADERS_DIGEST) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
