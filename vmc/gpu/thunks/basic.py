"""Transfers, views and shapes on the device.

Views (DimShuffle, Reshape of a C-contiguous array, SpecifyShape) cost no
device work: a GpuArray with new shape and strides over the same memory.
"""
from __future__ import annotations

import numpy as np

from vmc.tensor.checks import CheckUpdates
from vmc.tensor.elemwise import DimShuffle
from vmc.tensor.shape import Reshape, Shape, ShapeI, SpecifyShape
from vmc.thunks.checks import check_updates_thunk
from vmc.thunks.registry import register

from .. import get_device
from ..ops import AsDriverArray, GpuFromHost, HostFromGpu
from ..placement import GPU_KINDS, gpu_thunk

_ALL = lambda node: {0}      # noqa: E731


def device_of_node(node):
    """The Device a node's device-typed variables live on."""
    for v in list(node.outputs) + list(node.inputs):
        d = getattr(v.type, "device", None)
        if d is not None:
            return get_device(d)
    raise ValueError(f"{node.op}: no device-typed variable")


# -- transfers (their thunks work wherever they run) -----------------------------------
@gpu_thunk(GpuFromHost, also_cpu=True, host_inputs=_ALL)
def gpu_from_host_thunk(node, destroyable):
    from .._gpu import GpuArray, to_device
    dev = get_device(node.op.device)
    dtype = np.dtype(node.outputs[0].type.dtype)

    def thunk(x):
        if type(x) is GpuArray and x.dev is dev:
            return x          # already there: a scan body's inputs on its device
        return to_device(dev, x, dtype)
    return thunk


@gpu_thunk(HostFromGpu, also_cpu=True, host_outputs=_ALL)
def host_from_gpu_thunk(node, destroyable):
    return lambda x: x.get()


@gpu_thunk(AsDriverArray, also_cpu=True)
def as_driver_array_thunk(node, destroyable):
    return lambda x: x.to_driver()


# -- shapes (host scalars of a device array) and views --------------------------------------
@gpu_thunk(ShapeI, host_outputs=_ALL)
def shape_i_thunk(node, destroyable):
    i = node.op.i
    return lambda x: np.array(x.shape[i], dtype=np.int64)


@gpu_thunk(Shape, host_outputs=_ALL)
def shape_thunk(node, destroyable):
    return lambda x: np.array(x.shape, dtype=np.int64)


@gpu_thunk(SpecifyShape, follows=lambda node: all(s == 1 for s in node.inputs[0].type.shape))
def specify_shape_thunk(node, destroyable):
    shape = node.op.shape

    def thunk(x):
        if any(s is not None and s != a for s, a in zip(shape, x.shape)):
            raise ValueError(f"expected shape {shape}, got {x.shape}")
        return x
    return thunk


@gpu_thunk(DimShuffle, follows=lambda node: all(s == 1 for s in node.inputs[0].type.shape))
def dimshuffle_thunk(node, destroyable):
    order = node.op.new_order
    kept = set(d for d in order if d != "x")
    dropped = [d for d in range(node.op.input_ndim) if d not in kept]

    def thunk(x):
        for d in dropped:
            if x.shape[d] != 1:
                raise ValueError(f"{node.op}: dim {d} of an input of shape {x.shape} is "
                                 f"dropped but is not 1")
        shape = tuple(1 if d == "x" else x.shape[d] for d in order)
        strides = tuple(0 if d == "x" else x.strides[d] for d in order)
        return x.view(shape, strides)
    return thunk


@gpu_thunk(Reshape, host_inputs=lambda node: {1})
def reshape_thunk(node, destroyable):
    def thunk(x, shp):
        shape = [int(s) for s in np.asarray(shp)]
        size = int(np.prod(x.shape))
        if shape.count(-1) == 1:
            rest = int(np.prod([s for s in shape if s != -1]))
            shape[shape.index(-1)] = size // rest if rest else 0
        if int(np.prod(shape)) != size or any(s < 0 for s in shape):
            raise ValueError(f"cannot reshape an array of shape {x.shape} into {tuple(shp)}")
        if not x.flags_c_contiguous:
            x = x.copy()
        strides, s = [], x.dtype.itemsize
        for d in reversed(shape):
            strides.append(s)
            s *= max(d, 1)
        return x.view(tuple(shape), tuple(reversed(strides)))
    return thunk


# The late updates' shape checks read only shapes, which GpuArrays carry: the
# CPU's thunk runs them (CheckUpdates is made by the scheduler, after placement).
for _kind in GPU_KINDS:
    register(CheckUpdates, device=_kind)(check_updates_thunk)
