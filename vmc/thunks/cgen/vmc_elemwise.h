/* vmc_elemwise.h: what a generated elementwise kernel library includes.
 *
 * elemwise.py generates, per kernel, only the loops over one row (the
 * expression) and a descriptor (vmc_ew_desc); the driver between the VM's
 * calling convention and those loops (converting inputs, checking shapes
 * against the static broadcast pattern, choosing, reusing or aliasing output
 * buffers, collapsing dimensions, walking the outer dimensions) is in
 * vmc_ew_runtime.h, built with the package as vmc.thunks.cgen._ew_runtime.
 *
 * Loops: `row(n, p)` runs n elements where every input is contiguous, or is a
 * per-row scalar when its last dim is statically broadcastable ("row mode");
 * `strided(n, p, s)` takes any byte strides. For fused reductions, `racc`
 * accumulates elementwise into contiguous output rows, `rrow` reduces a whole
 * row into each output's current element, and `rstrided` does either with
 * any strides (output stride 0 along reduced axes). p[0..nin) are inputs,
 * p[nin..nin+nout) outputs.
 */
#ifndef VMC_ELEMWISE_H
#define VMC_ELEMWISE_H
#include "vmc_types.h"
#include "vmc_math.h"
#include "vmc_scalar.h"
#include <string.h>

#define VMC_MAXOPS 64             /* inputs + outputs of one kernel */
#define VMC_MAXDIM 32
#define VMC_GIL_MIN 16384         /* release the GIL for loops at least this long */
#define VMC_BLK 256               /* block of the vectorized pass + fix-up loops */

typedef void (*vmc_row_fn)(npy_intp n, char **p);
typedef void (*vmc_strided_fn)(npy_intp n, char **p, const npy_intp *s);

typedef struct {
    const char *label;            /* the expression, for error messages */
    int nin, nout, nd;
    const int *in_types;          /* NPY_* typenum per input */
    const npy_bool *bcast;        /* nin x nd static broadcastable flags */
    const int *out_types;
    const int *inplace;           /* per output: the input it may overwrite, or -1 */
    int reduce;                   /* 0: elementwise; 1: outputs reduced over raxes */
    const npy_bool *raxes;        /* nd flags */
    const char *reduce_name;      /* "add", "maximum", "minimum" */
    npy_intp reuse_max;           /* keep output buffers up to this many bytes in ctx */
    vmc_row_fn row, racc, rrow;
    vmc_strided_fn strided, rstrided;
    void (*rinit)(char **out, npy_intp n);   /* fill each output with the identity */
    void (*rcombine)(char **out, char **part);   /* out[k][0] = acc(out[k][0], part[k][0]) */
    int tier;                     /* 0; a long kernel's block form 1, its segments 2 (tiers.py) */
} vmc_ew_desc;

/* A kernel library exports its descriptors, in order, NULL-terminated; the
 * driver (_ew_runtime.c) dlopens the library and makes one thunk per
 * descriptor. Nothing here needs Python.h or numpy (see vmc_types.h). */
#define VMC_EXPORT __attribute__((visibility("default")))
#define VMC_KERNEL_TABLE VMC_EXPORT const vmc_ew_desc *const vmc_kernels[]

#endif /* VMC_ELEMWISE_H */
