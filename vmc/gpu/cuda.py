"""The CUDA driver: pycuda makes the context; NVRTC compiles; cuBLAS multiplies.

Kept thin on purpose: everything per call (memory, copies, launches, graphs,
events) is the shared core in ``vmc.gpu._gpu``, which calls the CUDA driver's
C entry points (cuLaunchKernel, ...) by pointer. This module only opens the
device (pycuda's retained primary context, made current; one non-blocking
stream), compiles kernel modules to cubins for the device's own ``sm_XY``
with NVRTC (cached on disk under ``config.compiledir``) and loads them, and
wraps results as pycuda ``GPUArray``s for ``vmc.Out(y, borrow=True)``.
"""
from __future__ import annotations

import atexit
import hashlib
import os

from . import GpuUnavailableError
from ._gpu import CUDA_KIND, Device

INSTALL = ("`pip install pycuda` (it builds against the CUDA toolkit; on the GPU machine, "
           "from the wheels in ../shared/gpu as its README says)")


def _pycuda():
    try:
        import pycuda.driver as drv
    except ImportError as e:
        raise GpuUnavailableError(f"vmc.config.device='cuda' needs pycuda, which does not "
                                  f"import ({e}). Install it with {INSTALL}, or use "
                                  f"device=opencl or device=cpu.") from None
    try:
        drv.init()
        n = drv.Device.count()
    except Exception as e:                      # noqa: BLE001 - told in the flag's terms
        raise GpuUnavailableError(f"vmc.config.device='cuda': pycuda imports but CUDA does "
                                  f"not initialise ({e}); check the NVIDIA driver "
                                  f"(nvidia-smi), or use device=cpu.") from None
    if n == 0:
        raise GpuUnavailableError("vmc.config.device='cuda': no CUDA device is visible "
                                  "(check CUDA_VISIBLE_DEVICES and nvidia-smi), or use "
                                  "device=cpu.")
    return drv


def resolve(name: str) -> str:
    return "cuda:0" if name == "cuda" else name


def open_device(name: str) -> Device:
    drv = _pycuda()
    index = int(name.split(":")[1])
    if index >= drv.Device.count():
        raise GpuUnavailableError(f"vmc.config.device={name!r}: there are only "
                                  f"{drv.Device.count()} CUDA devices")
    cudev = drv.Device(index)
    ctx = cudev.retain_primary_context()
    ctx.push()
    atexit.register(_pop, ctx)
    from .nvrtc import NvrtcError, library
    try:
        library()
    except NvrtcError as e:
        import shutil
        if not (shutil.which("nvcc") or os.path.exists("/usr/local/cuda/bin/nvcc")):
            raise GpuUnavailableError(f"vmc.config.device={name!r}: {e}") from None
    major, minor = cudev.compute_capability()
    dev = Device.__new__(Device)
    total = cudev.total_memory()
    state = CudaState(drv, cudev, ctx, f"sm_{major}{minor}")
    dev._setup(CUDA_KIND, name, f"{cudev.name()} (sm_{major}{minor})", ctx.handle, 0,
               total, total, state)
    dev.set_cuda_stream(dev.new_cuda_stream())
    return dev


def _pop(ctx):
    try:
        ctx.pop()
    except Exception:                           # noqa: BLE001 - exiting anyway
        pass


class CudaState:
    """What the Device keeps of pycuda, and how it compiles."""

    def __init__(self, drv, cudev, ctx, arch):
        self.drv, self.cudev, self.ctx, self.arch = drv, cudev, ctx, arch
        self.compute_units = cudev.get_attribute(drv.device_attribute.MULTIPROCESSOR_COUNT)
        self.max_local = 1024
        self._cublas = None

    def cublas(self, dev):
        """The device's cuBLAS handle (made once, on its stream, with a 32 MiB
        workspace of vmc's own: a captured CUDA graph may not allocate)."""
        if self._cublas is None:
            from ._gblas import cublas_handle, load_cublas
            from ._gpu import gpu_empty
            lib = load_cublas(_cublas_candidates())
            self._workspace = gpu_empty(dev, (32 << 20,), "uint8")
            self._cublas = cublas_handle(lib, dev.stream_handle, self._workspace)
        return self._cublas

    def compile(self, dev, source: str):
        """A module of ``source``: NVRTC to a cubin for this device (cached on
        disk), loaded here; ``kernel(name, local)`` of the result gives a Kernel."""
        return _CudaModule(dev, dev.load_cuda_module(cached_cubin(source, self.arch)),
                           self.max_local)

    def driver_array(self, garray, handle, offset):
        """A pycuda GPUArray over a GpuArray's memory (``base`` holds the GpuArray)."""
        from pycuda.gpuarray import GPUArray
        return GPUArray(garray.shape, garray.dtype, gpudata=handle + offset,
                        strides=garray.strides, base=garray)

    def from_driver_array(self, arr):
        from pycuda.gpuarray import GPUArray
        if isinstance(arr, GPUArray):
            return int(arr.gpudata), 0
        return None

    @property
    def groups_hint(self) -> int:
        return 8 * self.compute_units


def _cublas_candidates():
    """libcublas beside the CUDA toolkit and in the pip wheels, for when the loader's
    path does not hold it."""
    import glob
    import sys
    out = []
    for home in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if home:
            out += sorted(glob.glob(os.path.join(home, "lib64", "libcublas.so.*")), reverse=True)
    for base in sys.path:
        out += sorted(glob.glob(os.path.join(base, "nvidia", "cu*", "lib", "libcublas.so.*")),
                      reverse=True)
        out += sorted(glob.glob(os.path.join(base, "nvidia", "cublas", "lib", "libcublas.so.*")),
                      reverse=True)
    return [p for p in out if "Lt" not in os.path.basename(p)]


class _CudaModule:
    def __init__(self, dev, handle, max_local):
        self.dev, self.handle, self.max_local = dev, handle, max_local

    def kernel(self, name, local):
        return self.dev.cuda_kernel(self.handle, name, min(local, self.max_local))


def cached_cubin(source: str, arch: str) -> bytes:
    """The cubin of ``source`` for ``arch``, from ``config.compiledir``/gpu when
    compiled before (keyed by the source, the arch and NVRTC's version)."""
    from vmc.config import config

    from .nvrtc import NvrtcError, compile_cubin, nvcc_cubin, version
    try:
        tool = f"nvrtc {version()}"
    except NvrtcError:
        tool = "nvcc"
    key = hashlib.sha256(f"{source}\0{arch}\0{tool}".encode()).hexdigest()[:32]
    folder = os.path.join(config.compiledir, "gpu")
    path = os.path.join(folder, f"{key}.cubin")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        pass
    cubin = (compile_cubin(source, arch, warnings_fail=False) if tool != "nvcc"
             else nvcc_cubin(source, arch))
    try:
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(cubin)
        os.replace(tmp, path)
    except OSError:
        pass
    return cubin
