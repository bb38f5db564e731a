"""Gemm, Gemv, Ger and Dot of float32/float64 on the device (``_gblas.MatmulThunk``:
cuBLAS on CUDA, the dialect's tiled GEMM on OpenCL). alpha and beta are read on
the host (they are constants in every graph the rewrites make)."""
from __future__ import annotations

from vmc.config import config
from vmc.tensor.blas_ops import BLAS_DTYPES, Gemm, Gemv, Ger
from vmc.tensor.math import Dot

from .. import modules
from .._gblas import MODES, MatmulThunk
from .._gpu import CUDA_KIND
from .._gthunks import as_cthunk
from ..codegen import KERNEL_DIR
from ..placement import gpu_thunk
from .basic import device_of_node

_MODE = {Gemm: MODES["gemm"], Gemv: MODES["gemv"], Ger: MODES["ger"], Dot: MODES["dot"]}
_SUFFIX = {"float32": "f32", "float64": "f64"}


def _supported(node):
    dtypes = {v.type.dtype for v in node.inputs if v.type.ndim} | {node.outputs[0].type.dtype}
    return len(dtypes) == 1 and dtypes <= set(BLAS_DTYPES)


def _alpha_beta(node):
    return {k for k, v in enumerate(node.inputs) if v.type.ndim == 0}


def _engine(dev, dtype, mode, inplace, label, nd0=2, nd1=2):
    kernel, blas = None, 0
    if dev.kind == CUDA_KIND:
        blas = dev.keep.cublas(dev)
    else:
        name = f"vmc_gemm_{_SUFFIX[dtype]}"
        kernel = modules.build(dev, (KERNEL_DIR / "gemm.h").read_text(), {name: 256})[name]
    return MatmulThunk(dev, mode, dtype, inplace, kernel, blas, bool(config.gpu_tf32), label,
                       nd0, nd1)


def gemm_engine(dev, dtype, label):
    """A MatmulThunk whose ``product`` (cimported from ``_gblas``) the thunks
    built on a GEMM call (``_gconv.ConvThunk``)."""
    return _engine(dev, dtype, MODES["gemm"], False, label)


@gpu_thunk(Gemm, Gemv, Ger, Dot, kind="c", supports=_supported, host_inputs=_alpha_beta)
def matmul_thunk(node, destroyable):
    dev = device_of_node(node)
    op = node.op
    mode = next(m for cls, m in _MODE.items() if isinstance(op, cls))
    nd = [v.type.ndim for v in node.inputs]
    return as_cthunk(_engine(dev, node.outputs[0].type.dtype, mode,
                             0 in destroyable and mode != MODES["dot"], str(op), nd[0],
                             nd[1] if len(nd) > 1 else 2))
