"""The ops that move values between the host and a device.

The transfer pass puts them at the edges of the device part of a graph: a
function's host inputs go up once (``GpuFromHost``), its outputs come down
once (``HostFromGpu``), and an op without a device thunk reads and writes the
host through a pair of them (the profile shows both). ``AsDriverArray``
gives ``vmc.Out(y, borrow=True)`` the driver's own array (a pycuda GPUArray or
a pyopencl Array) over the result's memory, without a copy.
"""
from __future__ import annotations

from vmc.graph.basic import Apply, Op
from vmc.graph.type import TensorType

from .types import GpuTensorType


class GpuFromHost(Op):
    """A host tensor copied to ``device``. A value already on the device passes
    through (a scan body's inputs), so the result counts as a view of the input:
    no thunk may overwrite it."""
    __props__ = ("device",)
    view_map = {0: [0]}

    def __init__(self, device):
        self.device = str(device)

    def make_node(self, x):
        if type(x.type) is not TensorType:
            raise TypeError(f"GpuFromHost: expected a host tensor, got {x.type}")
        return Apply(self, [x], [GpuTensorType.of(x.type, self.device).make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        return [HostFromGpu()(grads[0])]

    def __str__(self):
        return f"GpuFromHost{{{self.device}}}"


class HostFromGpu(Op):
    """A device tensor copied to the host."""
    __props__ = ()

    def make_node(self, x):
        if not isinstance(x.type, GpuTensorType):
            raise TypeError(f"HostFromGpu: expected a device tensor, got {x.type}")
        return Apply(self, [x], [x.type.host_type.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        return [GpuFromHost(inputs[0].type.device)(grads[0])]

    def __str__(self):
        return "HostFromGpu"


class AsDriverArray(Op):
    """The driver's own array over a device value (for ``Out(y, borrow=True)``)."""
    __props__ = ()

    def make_node(self, x):
        if not isinstance(x.type, GpuTensorType):
            raise TypeError(f"AsDriverArray: expected a device tensor, got {x.type}")
        return Apply(self, [x], [x.type.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        return [grads[0]]
