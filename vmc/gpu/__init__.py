"""The GPU backend (``config.device = "cuda"``), through pycuda.

Imported only when the GPU is asked for. vmc imports and runs without pycuda;
asking for the GPU without it, or without a visible CUDA device, raises
``GpuUnavailableError`` saying which is missing and how to fix it.
"""
from __future__ import annotations


class GpuUnavailableError(RuntimeError):
    pass


def require_gpu():
    """Check that pycuda imports and a CUDA device is visible; raise otherwise."""
    try:
        import pycuda.driver as drv
    except ImportError as e:
        raise GpuUnavailableError(
            f"vmc.config.device='cuda' needs pycuda, which is not installed ({e}). "
            f"Install it with `pip install pycuda` (it needs the CUDA toolkit), or use "
            f"device=cpu.") from None
    try:
        drv.init()
        n = drv.Device.count()
    except Exception as e:
        raise GpuUnavailableError(
            f"vmc.config.device='cuda': pycuda is installed but CUDA failed to initialise "
            f"({e}); check the NVIDIA driver, or use device=cpu.") from None
    if n == 0:
        raise GpuUnavailableError("vmc.config.device='cuda': no CUDA device is visible "
                                  "(check CUDA_VISIBLE_DEVICES and the driver), or use "
                                  "device=cpu.")
    raise GpuUnavailableError(
        "vmc.config.device='cuda': a GPU is present, but this build of vmc has no GPU "
        "backend yet (its kernels have not been validated on a GPU); use device=cpu.")
