"""Call a C thunk from Python without a VM: for tests, benchmarks and debugging.

``call(thunk, *inputs, n_out=1)`` lays the inputs in a register file, calls
the thunk through the one C ABI, and returns the outputs (a tuple). The
shim is compiled once through the cache.
"""
from __future__ import annotations

from .cache import compile_module

_SOURCE = r"""
static PyObject *call(PyObject *self, PyObject *args) {
    PyObject *fn, *ctx, *inputs;
    int nout;
    if (!PyArg_ParseTuple(args, "OOO!i", &fn, &ctx, &PyTuple_Type, &inputs, &nout)) return NULL;
    vmc_thunk_fn f = (vmc_thunk_fn)PyCapsule_GetPointer(fn, VMC_THUNK_CAPSULE);
    if (!f) return NULL;
    void *c = NULL;
    if (ctx != Py_None && !(c = PyCapsule_GetPointer(ctx, VMC_CTX_CAPSULE))) return NULL;
    Py_ssize_t nin = PyTuple_GET_SIZE(inputs);
    if (nout < 1 || nin + nout > 256) {
        PyErr_SetString(PyExc_ValueError, "bad number of inputs or outputs");
        return NULL;
    }
    PyObject *regs[256];
    int ins[256], outs[256];
    for (Py_ssize_t i = 0; i < nin; i++) {
        regs[i] = PyTuple_GET_ITEM(inputs, i);
        Py_INCREF(regs[i]);
        ins[i] = (int)i;
    }
    for (int k = 0; k < nout; k++) { regs[nin + k] = NULL; outs[k] = (int)nin + k; }
    int rc = f(c, regs, ins, outs);
    PyObject *res = rc == 0 ? PyTuple_New(nout) : NULL;
    for (int k = 0; k < nout; k++) {
        if (res && regs[nin + k]) PyTuple_SET_ITEM(res, k, regs[nin + k]);
        else Py_XDECREF(regs[nin + k]);
    }
    for (Py_ssize_t i = 0; i < nin; i++) Py_DECREF(regs[i]);
    if (rc == 0 && !res) return NULL;
    if (rc != 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_SystemError, "C thunk failed without setting an exception");
    return res;
}
static const vmc_export VMC_EXPORTS[] = {{NULL}};
static PyMethodDef VMC_METHODS[] = {
    {"call", call, METH_VARARGS, "call(fn, ctx, inputs, n_out) -> tuple of outputs"},
    {NULL}};
"""


def call(thunk, *inputs, n_out: int = 1) -> tuple:
    """Run one CThunk on ``inputs``; return its ``n_out`` outputs."""
    return compile_module(_SOURCE, "caller").call(thunk.fn, thunk.ctx, inputs, n_out)
