/* The one calling convention of vmc's C thunks (see vmc/program.py).
 *
 * A thunk reads its inputs as borrowed references regs[ins[k]] and stores each
 * output as a new reference into regs[outs[k]], releasing whatever that
 * register held (Py_XSETREF). It returns 0 on success, or -1 with a Python
 * exception set. It is called with the GIL held.
 *
 * Thunks travel through Python as PyCapsules: the function pointer in a capsule
 * named VMC_THUNK_CAPSULE, its private data (or NULL) in one named
 * VMC_CTX_CAPSULE.
 */
#ifndef VMC_THUNK_H
#define VMC_THUNK_H
#include <Python.h>

typedef int (*vmc_thunk_fn)(void *ctx, PyObject **regs, const int *ins, const int *outs);

#define VMC_THUNK_CAPSULE "vmc_thunk"
#define VMC_CTX_CAPSULE "vmc_ctx"

#endif
