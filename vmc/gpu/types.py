"""Where a value lives is part of its type.

``GpuTensorType(dtype, shape, device)`` is a ``TensorType`` whose values are
``GpuArray``s on ``device`` ("opencl:0:0", "cuda:0"). It never equals a host
TensorType, so a graph says exactly where each value is, and the device of a
node is the device of its variables: a node with a GpuTensorType input or
output runs on that device (its thunk comes from that driver's registry), any
other node on the CPU. Only the transfer pass (``vmc.gpu.transfer``) makes
device-typed variables, after the rewrites: user graphs stay host-typed, so
every op's type rules, gradients and rewrites are the same on every device.

``GpuConstant``: a constant whose value was copied to the device once, at
compile time. ``DeviceShared``: the device twin of a shared variable whose
value lives on the device; it shares the user's variable's value cell, so
``get_value``/``set_value`` and the function's updates see one value.
"""
from __future__ import annotations

from vmc.graph.basic import Constant, SharedVariable, Variable
from vmc.graph.type import TensorType

_GPU_TYPES: dict = {}


class GpuTensorType(TensorType):
    """A tensor type whose values live on a GPU device."""
    __slots__ = ("device",)

    def __new__(cls, dtype, shape=(), device=None):
        key = (dtype, shape, device)
        try:
            return _GPU_TYPES[key]
        except (KeyError, TypeError):
            pass
        if not device:
            raise ValueError("GpuTensorType needs a device")
        host = TensorType(dtype, shape)
        self = object.__new__(cls)
        object.__setattr__(self, "dtype", host.dtype)
        object.__setattr__(self, "shape", host.shape)
        object.__setattr__(self, "device", str(device))
        object.__setattr__(self, "_hash", hash((GpuTensorType, host.dtype, host.shape, device)))
        self = _GPU_TYPES.setdefault((host.dtype, host.shape, str(device)), self)
        try:
            _GPU_TYPES[key] = self
        except TypeError:
            pass
        return self

    @classmethod
    def of(cls, host_type, device):
        return cls(host_type.dtype, host_type.shape, device)

    @property
    def host_type(self):
        return TensorType(self.dtype, self.shape)

    def __reduce__(self):
        return (GpuTensorType, (self.dtype, self.shape, self.device))

    def clone(self, dtype=None, shape=None):
        return GpuTensorType(self.dtype if dtype is None else dtype,
                             self.shape if shape is None else shape, self.device)

    def __eq__(self, other):
        return (type(other) is GpuTensorType and self.dtype == other.dtype
                and self.shape == other.shape and self.device == other.device)

    def __hash__(self):
        return self._hash

    def is_super(self, other):
        return (isinstance(other, GpuTensorType) and other.device == self.device
                and self.host_type.is_super(other.host_type))

    def __repr__(self):
        return f"Gpu{TensorType.__repr__(self)[:-1]}, {self.device})"

    def __str__(self):
        return f"{TensorType.__str__(self)} on {self.device}"

    def filter(self, value, name="input", allow_downcast=False):
        """A GpuArray on this device of this type's dtype and shape."""
        from ._gpu import GpuArray
        if not isinstance(value, GpuArray) or value.device != self.device:
            raise TypeError(f"{name}: expected a GpuArray on {self.device} ({self}), got "
                            f"{type(value).__name__}")
        if value.dtype.name != self.dtype or value.ndim != self.ndim or any(
                s is not None and s != a for s, a in zip(self.shape, value.shape)):
            raise TypeError(f"{name}: expected {self}, got a GpuArray {value.dtype} of shape "
                            f"{value.shape}")
        return value

    def values_eq(self, a, b):
        return self.host_type.values_eq(a.get(), b.get())


class GpuConstant(Constant):
    """A constant copied to the device at compile time (``data`` is a GpuArray);
    ``host`` keeps the numpy value for printing and merging."""
    __slots__ = ("host",)

    def __init__(self, host_constant, device_array, device):
        Variable.__init__(self, GpuTensorType.of(host_constant.type, device), None, None,
                          host_constant.name)
        self.data = device_array
        self.host = host_constant
        self._key = None

    def signature(self):
        return (self.type, self.host.signature())

    def __repr__(self):
        return f"{self.host!r}@{self.type.device}"


class DeviceShared(SharedVariable):
    """The device-typed twin of a device shared variable (same value cell)."""
    __slots__ = ("user",)

    def __init__(self, user, device):
        Variable.__init__(self, GpuTensorType.of(user.type, device), None, None, user.name)
        self.container = user.container
        self._default_update = None
        self.user = user

    def get_value(self, borrow=False):
        return self.user.get_value(borrow=borrow)

    def set_value(self, value, borrow=False):
        self.user.set_value(value, borrow=borrow)


def device_of(var):
    """The device name a variable's value lives on, or None for the host."""
    return getattr(var.type, "device", None)


def node_device(node):
    """The device a node runs on: that of its device-typed variables, else None."""
    for v in node.outputs:
        d = getattr(v.type, "device", None)
        if d is not None:
            return d
    for v in node.inputs:
        d = getattr(v.type, "device", None)
        if d is not None:
            return d
    return None


def driver_kind(device_name: str) -> str:
    """The thunk registry of a device: "cuda" or "opencl"."""
    return device_name.split(":")[0]
