"""conv2d and pool_2d on the device: ``_gconv.ConvThunk`` (im2col, the device
GEMM, col2im; ``kernels/conv.h``) and ``_gconv.PoolThunk`` (``kernels/pool.h``),
C thunks for float32 and float64. The spatial shape input of the gradients
(the input's or the filters' (h, w)) is read on the host."""
from __future__ import annotations

from vmc.tensor.nnet.abstract_conv import (AbstractConv2d, AbstractConv2d_gradInputs,
                                           AbstractConv2d_gradWeights)
from vmc.tensor.signal.pool import (AveragePoolGrad, DownsampleFactorMaxGradGrad,
                                    MaxPoolGrad, Pool)

from .. import modules
from .._gconv import ConvThunk, PoolThunk
from .._gthunks import as_cthunk
from ..codegen import KERNEL_DIR
from ..placement import gpu_thunk
from .basic import device_of_node
from .blas import gemm_engine

_SUFFIX = {"float32": "f32", "float64": "f64"}
LOCAL = 256
# The columns of one chunk of images (and their reordered output block) stay
# under this many bytes: a batch whose columns would not is done in chunks.
COL_BYTES = 256 << 20

_CONV_KIND = {AbstractConv2d: "forward", AbstractConv2d_gradInputs: "grad_inputs",
              AbstractConv2d_gradWeights: "grad_weights"}
_POOL_KIND = {Pool: ("pool", "vmc_pool"), MaxPoolGrad: ("grad", "vmc_pool_grad"),
              AveragePoolGrad: ("grad", "vmc_pool_grad"),
              DownsampleFactorMaxGradGrad: ("gradgrad", "vmc_pool_gradgrad")}


def _float_dtype(node, host=()):
    """Whether the node's device values are floats of one dtype the kernels take."""
    dtypes = {v.type.dtype for k, v in enumerate(node.inputs) if k not in host}
    dtypes |= {v.type.dtype for v in node.outputs}
    return len(dtypes) == 1 and dtypes <= set(_SUFFIX)


def _shape_input(node):
    """The gradients' spatial shape (input 2) is read on the host."""
    return {2} if not isinstance(node.op, AbstractConv2d) else set()


def _conv_ok(node):
    return _float_dtype(node, _shape_input(node))


def _pool_ok(node):
    return _float_dtype(node) and (not isinstance(node.op, DownsampleFactorMaxGradGrad)
                                   or node.op.mode == "max")


def kernels(dev, header, names):
    return modules.build(dev, (KERNEL_DIR / header).read_text(),
                         {name: LOCAL for name in names})


@gpu_thunk(AbstractConv2d, AbstractConv2d_gradInputs, AbstractConv2d_gradWeights, kind="c",
           supports=_conv_ok, host_inputs=_shape_input)
def conv_thunk(node, destroyable):
    dev = device_of_node(node)
    op, dtype = node.op, node.outputs[0].type.dtype
    sfx = _SUFFIX[dtype]
    ks = kernels(dev, "conv.h", [f"vmc_im2col_{sfx}", f"vmc_col2im_{sfx}",
                                 f"vmc_conv_reorder_{sfx}"])
    kind = next(k for cls, k in _CONV_KIND.items() if isinstance(op, cls))
    return as_cthunk(ConvThunk(dev, kind, dtype, op.border_mode, op.subsample,
                               op.filter_dilation, op.filter_flip, op.num_groups, ks,
                               gemm_engine(dev, dtype, str(op)), COL_BYTES, str(op)))


@gpu_thunk(Pool, MaxPoolGrad, AveragePoolGrad, DownsampleFactorMaxGradGrad, kind="c",
           supports=_pool_ok)
def pool_thunk(node, destroyable):
    dev = device_of_node(node)
    op, dtype = node.op, node.outputs[0].type.dtype
    kind, kernel = next(v for cls, v in _POOL_KIND.items() if isinstance(op, cls))
    name = f"{kernel}_{_SUFFIX[dtype]}"
    return as_cthunk(PoolThunk(dev, kind, dtype, node.inputs[0].type.ndim, op.ws, op.stride,
                               op.pad, op.ignore_border, op.mode,
                               kernels(dev, "pool.h", [name])[name], str(op)))
