"""Indexing and the ops that copy between views, on the device.

``Subtensor`` with basic indices is a view; with index arrays, the gather
kernel of ``kernels/index.h``. ``IncSubtensor`` copies ``x`` (unless it may be
written in place) and scatters into it: set, or add (atomically with index
arrays: repeated indices add up as in numpy's ``add.at``). The same kernels,
with no index arrays, are the strided copies and adds of ``Alloc``, ``Join``
and basic ``IncSubtensor``; ``ARange`` has a kernel of its own.
"""
from __future__ import annotations

import numpy as np

from vmc.tensor.creation import ARange
from vmc.tensor.shape import Alloc, Join
from vmc.tensor.subtensor import IncSubtensor, Subtensor

from .. import modules
from .._gpu import gpu_empty
from ..codegen import KERNEL_DIR
from ..indexing import MAX_ARRAYS, MAX_DIMS, Plan, kernel_args, plan
from ..placement import gpu_thunk
from .basic import device_of_node

LOCAL = 256
SUFFIX = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32"}


def index_kernel(dev, kind, dtype):
    name = f"vmc_{kind}_{SUFFIX[np.dtype(dtype).name]}"
    return modules.build(dev, (KERNEL_DIR / "index.h").read_text(), {name: LOCAL})[name]


def _groups(dev, n):
    return max(1, min((n + LOCAL - 1) // LOCAL, dev.keep.groups_hint))


def _scalar_inputs(node):
    return {k for k, v in enumerate(node.inputs) if k > 0 and v.type.ndim == 0}


def _index_ok(node, first_index):
    x = node.inputs[0]
    arrays = [v for v in node.inputs[first_index:] if v.type.ndim > 0]
    return (x.type.dtype in SUFFIX and len(arrays) <= MAX_ARRAYS
            and all(v.type.dtype == "int64" for v in arrays)
            and max(x.type.ndim, node.outputs[0].type.ndim) <= MAX_DIMS)


def scatter(dev, k, dst_plan, value, mode, slot):
    """dst_plan's elements (of its view) = / += value (broadcast to the plan's shape)."""
    args, n = kernel_args(dst_plan, dev.error_buffer(), slot)
    vstr = _bcast_strides(value, dst_plan.shape)
    if n:
        k(_groups(dev, n), *args, dst_plan.view, value, *[np.int64(s) for s in vstr],
          np.int64(mode))


def _bcast_strides(value, shape):
    """``value``'s element strides broadcast to ``shape`` (padded to MAX_DIMS)."""
    if value.ndim > len(shape):
        raise ValueError(f"a value of shape {value.shape} does not fit {shape}")
    lead = len(shape) - value.ndim
    out = [0] * lead
    for d, n in enumerate(value.shape):
        want = shape[lead + d]
        if n != want and n != 1:
            raise ValueError(f"a value of shape {value.shape} cannot be broadcast to {shape}")
        out.append(0 if n == 1 else value.strides[d] // value.dtype.itemsize)
    return [0] * (MAX_DIMS - len(shape)) + out


def view_plan(view):
    """The plan that walks a whole view (no index arrays)."""
    item = view.dtype.itemsize
    return Plan(view.view(view.shape, view.strides, 0), view.shape,
                [s // item for s in view.strides], [])


@gpu_thunk(Subtensor, supports=lambda node: _index_ok(node, 1), host_inputs=_scalar_inputs)
def subtensor_thunk(node, destroyable):
    dev = device_of_node(node)
    template = node.op.template
    gather = index_kernel(dev, "gather", node.inputs[0].type.dtype)
    slot = dev.error_slot(f"{node.op}: index out of bounds (output element {{value}} "
                          f"counting from 1)")

    def thunk(x, *idx):
        p = plan(x, template, idx)
        if not p.arrays:
            return p.view
        out = gpu_empty(dev, p.shape, x.dtype)
        args, n = kernel_args(p, dev.err_buf, slot)
        if n:
            gather(_groups(dev, n), *args, p.view, out)
            dev.err_pending = True
        return out
    return thunk


@gpu_thunk(IncSubtensor, supports=lambda node: _index_ok(node, 2)
           and node.inputs[1].type.dtype == node.inputs[0].type.dtype,
           host_inputs=lambda node: {k for k, v in enumerate(node.inputs)
                                     if k > 1 and v.type.ndim == 0})
def inc_subtensor_thunk(node, destroyable):
    dev = device_of_node(node)
    template, set_ = node.op.template, node.op.set
    inplace = 0 in destroyable
    k = index_kernel(dev, "scatter", node.inputs[0].type.dtype)
    slot = dev.error_slot(f"{node.op}: index out of bounds (element {{value}} counting "
                          f"from 1)")

    def thunk(x, y, *idx):
        out = x if inplace and x.flags_c_contiguous else x.copy()
        p = plan(out, template, idx)
        if not p.arrays:
            p = view_plan(p.view)
        mode = 0 if set_ else (1 if p.arrays else 2)
        scatter(dev, k, p, y, mode, slot)
        dev.err_pending = bool(p.arrays)
        return out
    return thunk


@gpu_thunk(Alloc, supports=lambda node: node.outputs[0].type.dtype in SUFFIX
           and node.outputs[0].type.ndim <= MAX_DIMS,
           host_inputs=lambda node: set(range(1, len(node.inputs))))
def alloc_thunk(node, destroyable):
    dev = device_of_node(node)
    dtype = node.outputs[0].type.dtype
    k = index_kernel(dev, "scatter", dtype)

    def thunk(value, *dims):
        shape = tuple(int(d) for d in dims)
        if any(d < 0 for d in shape):
            raise ValueError(f"alloc: negative dimension in {shape}")
        out = gpu_empty(dev, shape, dtype)
        scatter(dev, k, view_plan(out), value, 0, 0)
        return out
    return thunk


@gpu_thunk(Join, supports=lambda node: node.outputs[0].type.dtype in SUFFIX
           and node.outputs[0].type.ndim <= MAX_DIMS)
def join_thunk(node, destroyable):
    dev = device_of_node(node)
    dtype = node.outputs[0].type.dtype
    k = index_kernel(dev, "scatter", dtype)

    def thunk(*xs):
        axis = int(node.op.axis)
        nd = xs[0].ndim
        axis = axis + nd if axis < 0 else axis
        shape = list(xs[0].shape)
        for x in xs[1:]:
            if x.ndim != nd or any(a != b for d, (a, b) in enumerate(zip(shape, x.shape))
                                   if d != axis):
                raise ValueError(f"join: shapes {[x.shape for x in xs]} do not match "
                                 f"off axis {axis}")
        shape[axis] = sum(x.shape[axis] for x in xs)
        out = gpu_empty(dev, tuple(shape), dtype)
        at = 0
        for x in xs:
            off = at * out.strides[axis]
            part = out.view(x.shape, out.strides, off)
            scatter(dev, k, view_plan(part), x, 0, 0)
            at += x.shape[axis]
        return out
    return thunk


_ARANGE = """
#define VMC_ARANGE(S, T) KERNEL void vmc_arange_##S(const vmc_long n, const T start, \\
        const T step, GLOBAL_MEM T *Y, const vmc_long oy) { \\
    for (vmc_long i = GID_0 * LDIM_0 + LID_0; i < n; i += GDIM_0 * LDIM_0) \\
        Y[oy + i] = start + (T)i * step; }
VMC_ARANGE(f32, npy_float32)
VMC_ARANGE(f64, npy_float64)
VMC_ARANGE(i64, npy_int64)
VMC_ARANGE(i32, npy_int32)
"""


@gpu_thunk(ARange, supports=lambda node: node.outputs[0].type.dtype in SUFFIX,
           host_inputs=lambda node: {0, 1, 2})
def arange_thunk(node, destroyable):
    dev = device_of_node(node)
    dtype = np.dtype(node.outputs[0].type.dtype)
    name = f"vmc_arange_{SUFFIX[dtype.name]}"
    k = modules.build(dev, _ARANGE, {name: LOCAL})[name]

    def thunk(start, stop, step):
        if step == 0:
            raise ValueError("arange: step must not be 0")
        n = max(int(np.ceil((stop - start) / step)), 0)     # numpy's length rule
        out = gpu_empty(dev, (n,), dtype)
        if n:
            k(_groups(dev, n), np.int64(n), dtype.type(start), dtype.type(step), out)
        return out
    return thunk
