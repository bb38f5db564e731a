"""The OpenCL driver: PyOpenCL makes the context and queue and compiles kernels.

Any OpenCL 1.2 device with double precision works: AMD and Intel GPUs, and
PoCL on a CPU (Debian's ``pocl-opencl-icd``), which is how CI runs every GPU
kernel without a GPU. Launches, copies and memory go through
``vmc.gpu._gpu`` (clEnqueueNDRangeKernel etc. from libOpenCL, by pointer).
"""
from __future__ import annotations

from . import GpuUnavailableError
from ._gpu import OPENCL_KIND, Device, make_kernel

INSTALL = ("`pip install pyopencl` for the Python driver, and an OpenCL implementation: "
           "your GPU vendor's, or PoCL on the CPU (`apt-get install pocl-opencl-icd "
           "ocl-icd-libopencl1`)")


def _cl():
    try:
        import pyopencl as cl
    except ImportError as e:
        raise GpuUnavailableError(f"vmc.config.device='opencl' needs pyopencl, which does not "
                                  f"import ({e}). Install {INSTALL}.") from None
    return cl


def platforms():
    """[(platform index, device index, platform name, device name, is GPU)]; [] without
    pyopencl or an OpenCL implementation."""
    try:
        cl = _cl()
        plats = cl.get_platforms()
    except Exception:                       # noqa: BLE001 - no driver: no devices
        return []
    out = []
    for p, plat in enumerate(plats):
        try:
            devs = plat.get_devices()
        except Exception:                   # noqa: BLE001 - a platform without devices
            continue
        for d, dev in enumerate(devs):
            out.append((p, d, plat.name, dev.name, bool(dev.type & cl.device_type.GPU)))
    return out


def resolve(name: str) -> str:
    """``opencl`` -> ``opencl:P:D`` (the first GPU, else the first device)."""
    if name != "opencl":
        return name
    found = platforms()
    if not found:
        _cl()
        raise GpuUnavailableError(f"vmc.config.device='opencl': pyopencl finds no OpenCL "
                                  f"platform with a device. Install {INSTALL}.")
    best = next((f for f in found if f[4]), found[0])
    return f"opencl:{best[0]}:{best[1]}"


def open_device(name: str) -> Device:
    cl = _cl()
    _, p, d = name.split(":")
    try:
        plat = cl.get_platforms()[int(p)]
        cldev = plat.get_devices()[int(d)]
    except Exception as e:                  # noqa: BLE001 - told in terms of the flag
        raise GpuUnavailableError(f"vmc.config.device={name!r}: no such OpenCL device ({e}); "
                                  f"devices: {platforms() or 'none'}. Install {INSTALL}.") \
            from None
    if not cldev.double_fp_config:
        raise GpuUnavailableError(f"vmc.config.device={name!r}: {cldev.name} has no double "
                                  "precision, which vmc's kernels need")
    ctx = cl.Context([cldev])
    queue = cl.CommandQueue(ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)
    dev = Device.__new__(Device)
    dev._setup(OPENCL_KIND, name, f"{cldev.name} ({plat.name})", ctx.int_ptr, queue.int_ptr,
               cldev.global_mem_size, cldev.max_mem_alloc_size, OpenCLState(cl, ctx, queue, cldev))
    return dev


class OpenCLState:
    """What the Device keeps of PyOpenCL: its objects, and how to compile."""

    def __init__(self, cl, ctx, queue, cldev):
        self.cl, self.ctx, self.queue, self.cldev = cl, ctx, queue, cldev
        self.max_local = int(cldev.max_work_group_size)
        self.compute_units = int(cldev.max_compute_units)

    def compile(self, dev, source: str):
        """A program of ``source``; ``kernel(name, local)`` of it gives a Kernel."""
        cl = self.cl
        try:
            prg = cl.Program(self.ctx, source).build(options=["-cl-std=CL1.2"])
        except cl.RuntimeError as e:
            raise RuntimeError(f"OpenCL could not compile a vmc kernel module:\n{e}\n"
                               f"--- source ---\n{_numbered(source)}") from None
        return _ClProgram(self, dev, prg)

    def driver_array(self, garray, handle, offset):
        """A pyopencl Array over a GpuArray's memory; it holds the GpuArray."""
        import pyopencl.array as cla
        buf = self.cl.Buffer.from_int_ptr(handle, retain=True)
        arr = cla.Array(self.queue, garray.shape, garray.dtype, strides=garray.strides,
                        data=buf, offset=offset)
        arr.vmc_owner = garray          # the memory returns to vmc's pool only after arr dies
        return arr

    def from_driver_array(self, arr):
        """(handle, byte offset) of a pyopencl Array, or None for anything else."""
        import pyopencl.array as cla
        if isinstance(arr, cla.Array):
            return arr.base_data.int_ptr, arr.offset
        return None

    @property
    def groups_hint(self) -> int:
        return 4 * self.compute_units


class _ClProgram:
    def __init__(self, state, dev, prg):
        self.state, self.dev, self.prg = state, dev, prg

    def kernel(self, name, local):
        k = self.state.cl.Kernel(self.prg, name)
        return make_kernel(self.dev, k.int_ptr, name, min(local, self.state.max_local), k)


def _numbered(source: str) -> str:
    return "\n".join(f"{i + 1:5d} {line}" for i, line in enumerate(source.splitlines()))
