"""Shared variables whose value lives on the device.

``vmc.shared(value)`` with ``config.device`` a GPU makes a ``GpuSharedVariable``
for float data: the user's variable is host-typed (every op takes it as
before), its value cell holds a GpuArray, ``get_value()`` copies it to numpy
and ``set_value`` copies numpy (or takes a GpuArray) to the device. The
transfer pass reads it through its device-typed twin (``types.DeviceShared``),
so a compiled function reads and updates it on the device, in place when the
schedule allows; nothing moves to the host unless a CPU op reads it.
"""
from __future__ import annotations

import numpy as np

from vmc.config import config
from vmc.tensor.variable import TensorSharedVariable

from . import get_device
from .types import DeviceShared

FLOATS = ("float32", "float64")


def device_shared(value, name=None, borrow=False, shape=None):
    """A GpuSharedVariable for float data (None for anything else: the host keeps it)."""
    from vmc.graph.type import TensorType

    from ._gpu import GpuArray
    if isinstance(value, GpuArray):
        dtype, ndim = value.dtype, value.ndim
    else:
        arr = np.asarray(value)
        dtype, ndim = arr.dtype, arr.ndim
    if np.dtype(dtype).name not in FLOATS:
        return None
    if shape is None:
        shape = (None,) * ndim
    return GpuSharedVariable(TensorType(dtype, shape), value, name=name, borrow=borrow)


class GpuSharedVariable(TensorSharedVariable):
    """A shared tensor whose value (a GpuArray) lives on ``device``."""
    __slots__ = ("device", "_twin")

    def __init__(self, type, value, name=None, borrow=False, device=None):
        self.device = get_device(device or config.device).name
        self._twin = None
        super().__init__(type, value, name=name, borrow=borrow)

    def get_value(self, borrow=False, return_internal_type=False):
        """A numpy copy; the GpuArray itself with ``borrow`` and ``return_internal_type``."""
        v = self.container[0]
        if borrow and return_internal_type:
            return v
        return v.get()

    def set_value(self, value, borrow=False):
        from ._gpu import GpuArray, set_from_host, to_device
        label = f"value of shared {self.name or 'variable'}"
        if isinstance(value, GpuArray):
            if value.device != self.device:
                raise ValueError(f"{label}: a GpuArray on {value.device}, but the variable "
                                 f"lives on {self.device}")
            self._check(value.dtype, value.shape, label)
            self.container[0] = value if borrow else value.copy()
            return
        host = self.type.filter(value, name=label, allow_downcast=True)
        old = self.container[0]
        if isinstance(old, GpuArray) and old.shape == host.shape and \
                old.flags_c_contiguous:
            # the same shape: write into the old buffer (its address stays, which
            # a captured CUDA graph relies on); functions read it afresh each call
            set_from_host(old, host)
            return
        self.container[0] = to_device(get_device(self.device), host)

    def _check(self, dtype, shape, label):
        t = self.type
        if np.dtype(dtype).name != t.dtype or len(shape) != t.ndim or any(
                s is not None and s != a for s, a in zip(t.shape, shape)):
            raise TypeError(f"{label}: expected {t}, got a GpuArray {dtype} of shape {shape}")

    @property
    def device_var(self):
        """The device-typed twin that compiled functions read (same value cell)."""
        if self._twin is None:
            self._twin = DeviceShared(self, self.device)
        return self._twin
