"""Philox draws on the device (``vmc.tensor.philox``): one kernel per
distribution and dtype, written from the same constants as the numpy thunk
(``vmc/thunks/philox.py``), so a seed gives the same numbers on the CPU and on
every device. The stream's state ``[key, counter]`` stays on the host (two
integers: the kernel takes them by value and the new state is computed there);
parameters are scalars (arrays of them run on the CPU)."""
from __future__ import annotations

import numpy as np

from vmc.tensor.philox import M0, M1, ROUNDS, W0, W1, PhiloxDraw

from .. import modules
from .._gpu import gpu_empty
from ..placement import gpu_thunk
from .basic import device_of_node

LOCAL = 256

SOURCE = f"""
#ifdef __OPENCL_VERSION__
#pragma OPENCL FP_CONTRACT OFF
#endif
VMC_DEVFN void vmc_philox_block(npy_uint64 key, npy_uint64 ctr, npy_uint32 *w) {{
    npy_uint32 k0 = (npy_uint32)key, k1 = (npy_uint32)(key >> 32);
    npy_uint32 c0 = (npy_uint32)ctr, c1 = (npy_uint32)(ctr >> 32), c2 = 0, c3 = 0;
    for (int r = 0; r < {ROUNDS}; r++) {{
        const npy_uint64 p0 = (npy_uint64){M0}u * c0, p1 = (npy_uint64){M1}u * c2;
        const npy_uint32 n0 = (npy_uint32)(p1 >> 32) ^ c1 ^ k0;
        const npy_uint32 n2 = (npy_uint32)(p0 >> 32) ^ c3 ^ k1;
        c1 = (npy_uint32)p1;
        c3 = (npy_uint32)p0;
        c0 = n0;
        c2 = n2;
        if (r < {ROUNDS - 1}) {{ k0 += {W0}u; k1 += {W1}u; }}
    }}
    w[0] = c0; w[1] = c1; w[2] = c2; w[3] = c3;
}}
VMC_DEVFN double vmc_u53(npy_uint32 a, npy_uint32 b) {{
    return ((double)(a >> 5) * 67108864.0 + (double)(b >> 6)) * (1.0 / 9007199254740992.0);
}}
#define VMC_PHILOX_LOOP(S, T, P) \\
    KERNEL void vmc_philox_##S(const vmc_long n, const npy_uint64 key, const npy_uint64 ctr, \\
                               const P a, const P b, GLOBAL_MEM T *Y, const vmc_long oy) {{ \\
        for (vmc_long i = GID_0 * LDIM_0 + LID_0; i < n; i += GDIM_0 * LDIM_0) {{ \\
            npy_uint32 w[4]; \\
            vmc_philox_block(key, ctr + (npy_uint64)i, w); \\
            Y[oy + i] = VMC_PHILOX_##S; \\
        }} \\
    }}
#define VMC_PHILOX_uniform_f32 VMC_FADD_RN((float)a, VMC_FMUL_RN(VMC_FADD_RN((float)b, \\
    -(float)a), (float)(w[0] >> 8) * 5.9604644775390625e-08f))
#define VMC_PHILOX_uniform_f64 VMC_DADD_RN(a, VMC_DMUL_RN(VMC_DADD_RN(b, -a), \\
    vmc_u53(w[0], w[1])))
#define VMC_PHILOX_normal(T) (T)VMC_DADD_RN(a, VMC_DMUL_RN(b, \\
    sqrt(-2.0 * log(1.0 - vmc_u53(w[0], w[1]))) * cos(6.283185307179586 * vmc_u53(w[2], w[3]))))
#define VMC_PHILOX_normal_f32 VMC_PHILOX_normal(float)
#define VMC_PHILOX_normal_f64 VMC_PHILOX_normal(double)
#define VMC_PHILOX_integers_i64 (a + (npy_int64)((((npy_uint64)w[1] << 32) | w[0]) % \\
    (npy_uint64)(b - a > 0 ? b - a : 1)))
#define VMC_PHILOX_integers_i32 (npy_int32)VMC_PHILOX_integers_i64
#define VMC_PHILOX_bernoulli(T) (T)(vmc_u53(w[0], w[1]) < a)
#define VMC_PHILOX_bernoulli_i64 VMC_PHILOX_bernoulli(npy_int64)
#define VMC_PHILOX_bernoulli_f32 VMC_PHILOX_bernoulli(float)
#define VMC_PHILOX_bernoulli_f64 VMC_PHILOX_bernoulli(double)
#define VMC_PHILOX_bernoulli_i8 VMC_PHILOX_bernoulli(npy_int8)
"""
# (dist, dtype) -> (kernel suffix, C type of the sample, C type of the params)
KINDS = {("uniform", "float32"): ("uniform_f32", "float", "double"),
         ("uniform", "float64"): ("uniform_f64", "double", "double"),
         ("normal", "float32"): ("normal_f32", "float", "double"),
         ("normal", "float64"): ("normal_f64", "double", "double"),
         ("integers", "int64"): ("integers_i64", "npy_int64", "npy_int64"),
         ("integers", "int32"): ("integers_i32", "npy_int32", "npy_int64"),
         ("bernoulli", "int64"): ("bernoulli_i64", "npy_int64", "double"),
         ("bernoulli", "int8"): ("bernoulli_i8", "npy_int8", "double"),
         ("bernoulli", "float32"): ("bernoulli_f32", "float", "double"),
         ("bernoulli", "float64"): ("bernoulli_f64", "double", "double")}
BODY = SOURCE + "".join(f"VMC_PHILOX_LOOP({s}, {t}, {p})\n" for s, t, p in KINDS.values())


def _supported(node):
    op = node.op
    return (op.dist, op.dtype) in KINDS and all(v.type.ndim == 0 for v in node.inputs[2:])


@gpu_thunk(PhiloxDraw, supports=_supported, host_inputs=lambda node: {0, 1},
           host_outputs=lambda node: {0},
           either_inputs=lambda node: set(range(2, len(node.inputs))))
def philox_thunk(node, destroyable):
    dev = device_of_node(node)
    op = node.op
    suffix, _, ptype = KINDS[(op.dist, op.dtype)]
    k = modules.build(dev, BODY, {f"vmc_philox_{suffix}": LOCAL})[f"vmc_philox_{suffix}"]
    dtype = np.dtype(op.dtype)
    pcast = np.int64 if ptype == "npy_int64" else np.float64

    def thunk(state, size, *params):
        key, counter = int(state[0]), int(state[1])
        shape = tuple(int(s) for s in size) if op.has_size else ()
        vals = [pcast(p.get() if hasattr(p, "get") else p) for p in params]
        if op.dist == "integers" and vals[1] <= vals[0]:
            raise ValueError(f"{op}: low >= high")
        a, b = vals[0], (vals[1] if len(vals) > 1 else pcast(0))
        n = int(np.prod(shape))
        out = gpu_empty(dev, shape, dtype)
        if n:
            k(max(1, min((n + LOCAL - 1) // LOCAL, dev.keep.groups_hint)), np.int64(n),
              np.uint64(key), np.uint64(counter), a, b, out)
        return np.array([key, (counter + n) % 2 ** 64], dtype=np.uint64), out
    return thunk
