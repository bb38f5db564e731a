"""The GPU backend: ``config.device = "cuda"`` or ``"opencl"`` (``"opencl:P:D"``).

Imported only when a device is asked for. Kernels are written once in a small
dialect (``kernels/vmc_dialect.h``) and generated from the CPU's scalar
templates; two drivers compile and launch them, CUDA through pycuda (with
NVRTC and cuBLAS) and OpenCL through PyOpenCL. The shared core
(``_gpu.pyx``: devices, pooled memory, ``GpuArray``, launches through the
drivers' C entry points) and every GPU thunk are the same for both.

vmc imports and runs without either driver; asking for a device whose driver
or hardware is missing raises ``GpuUnavailableError`` naming what is missing
and how to install it.
"""
from __future__ import annotations


class GpuUnavailableError(RuntimeError):
    """The device asked for cannot be used: no driver, no hardware, no such device."""


_DEVICES: dict = {}


def _driver(name: str):
    if name.startswith("cuda"):
        from . import cuda
        return cuda
    from . import opencl
    return opencl


def get_device(name: str | None = None):
    """The ``vmc.gpu._gpu.Device`` for ``name`` (default ``config.device``),
    opened once per process; GpuUnavailableError when it cannot be."""
    from vmc.config import config, parse_device
    name = parse_device(config.device if name is None else name)
    if name == "cpu":
        raise ValueError("get_device: 'cpu' is not a GPU device")
    dev = _DEVICES.get(name)
    if dev is not None:
        return dev
    drv = _driver(name)
    full = drv.resolve(name)
    dev = _DEVICES.get(full)
    if dev is None:
        try:
            from . import _gpu  # noqa: F401
        except ImportError as e:
            raise GpuUnavailableError(f"vmc's GPU core (vmc.gpu._gpu) is not built ({e}); "
                                      "run `python setup.py build_ext --inplace` or "
                                      "`pip install -e .`") from None
        dev = drv.open_device(full)
        _DEVICES[full] = dev
    _DEVICES[name] = dev
    return dev


def require_gpu(name: str | None = None):
    """Open the device (raising GpuUnavailableError when it cannot be)."""
    return get_device(name)


def driver_array(garray):
    """The driver's own array (pycuda GPUArray, pyopencl Array) over a GpuArray."""
    from ._gpu import handle_of
    handle, offset = handle_of(garray)
    return garray.dev.keep.driver_array(garray, handle, offset)


def __getattr__(name):
    # The core's public names, without importing it (and its build) at import.
    if name in ("GpuArray", "GpuMemoryError", "GpuDriverError", "Device"):
        from . import _gpu
        return getattr(_gpu, name)
    raise AttributeError(f"module 'vmc.gpu' has no attribute {name!r}")
