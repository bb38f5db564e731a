"""NVRTC through ctypes: CUDA C++ source -> a cubin, without nvcc and without a GPU.

The CUDA driver compiles its kernels with this (for the device's own
``sm_XY``), and CI compiles every kernel the test graphs generate for sm_90
with it (``tests/gpu``), so a kernel that NVRTC rejects or warns about fails
before it ever reaches a GPU. The library comes from the ``nvidia-cuda-nvrtc``
wheel (``pip install nvidia-cuda-nvrtc``) or from a CUDA toolkit
(``/usr/local/cuda/lib64``, ``$CUDA_HOME/lib64``).
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys

_LIB: list = []
# (sha256 of the source, arch) -> the log had a warning: what this process compiled
COMPILED: dict = {}


class NvrtcError(RuntimeError):
    """NVRTC is missing, or rejected (or warned about) a kernel's source."""


def _candidates():
    """Where libnvrtc may be: the pip wheel first, then CUDA toolkits, then the loader."""
    for base in sys.path:
        for sub in ("nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib", "nvidia/cu12/lib"):
            yield from sorted(glob.glob(os.path.join(base, sub, "libnvrtc.so*")), reverse=True)
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            yield from sorted(glob.glob(os.path.join(home, "lib64", "libnvrtc.so*")),
                              reverse=True)
    yield from ("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so")


def library():
    """The loaded libnvrtc (ctypes.CDLL); NvrtcError naming the install when absent."""
    if _LIB:
        return _LIB[0]
    tried = []
    for path in _candidates():
        if "builtins" in os.path.basename(path) or path.endswith(".alt.so"):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path}: {e}")
            continue
        _declare(lib)
        _LIB.append(lib)
        return lib
    raise NvrtcError("libnvrtc is not available (needed to compile CUDA kernels); install it "
                     "with `pip install nvidia-cuda-nvrtc`, or put a CUDA toolkit's lib64 on "
                     f"CUDA_HOME. Tried: {'; '.join(tried[-3:]) or 'nothing found'}")


def _declare(lib):
    c_p, c_int, c_size = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    pp = ctypes.POINTER(ctypes.c_char_p)
    lib.nvrtcCreateProgram.argtypes = [ctypes.POINTER(c_p), ctypes.c_char_p, ctypes.c_char_p,
                                       c_int, pp, pp]
    lib.nvrtcCompileProgram.argtypes = [c_p, c_int, pp]
    lib.nvrtcGetProgramLogSize.argtypes = [c_p, ctypes.POINTER(c_size)]
    lib.nvrtcGetProgramLog.argtypes = [c_p, ctypes.c_char_p]
    lib.nvrtcGetCUBINSize.argtypes = [c_p, ctypes.POINTER(c_size)]
    lib.nvrtcGetCUBIN.argtypes = [c_p, ctypes.c_char_p]
    lib.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(c_p)]
    lib.nvrtcGetErrorString.argtypes = [c_int]
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    lib.nvrtcVersion.argtypes = [ctypes.POINTER(c_int), ctypes.POINTER(c_int)]


def nvcc_cubin(source: str, arch: str) -> bytes:
    """The cubin of ``source`` from the CUDA toolkit's nvcc (where libnvrtc is missing)."""
    import shutil
    import subprocess
    import tempfile
    nvcc = shutil.which("nvcc") or os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"),
                                                "bin", "nvcc")
    if not os.path.exists(nvcc):
        raise NvrtcError("neither libnvrtc nor nvcc is available to compile CUDA kernels; "
                         "install `pip install nvidia-cuda-nvrtc` or the CUDA toolkit")
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "k.cu"), os.path.join(d, "k.cubin")
        with open(src, "w") as f:
            f.write(source)
        r = subprocess.run([nvcc, "-cubin", f"-arch={arch}", "-std=c++17", "-o", out, src],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise NvrtcError(f"nvcc could not compile a vmc kernel module:\n{r.stderr}")
        with open(out, "rb") as f:
            return f.read()


def version() -> tuple:
    lib = library()
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def compile_cubin(source: str, arch: str = "sm_90", name: str = "vmc_kernels.cu",
                  options=(), warnings_fail: bool = True) -> bytes:
    """The cubin of ``source`` for ``arch``; NvrtcError with NVRTC's log when it
    fails, or (``warnings_fail``) when the log holds a warning."""
    lib = library()
    prog = ctypes.c_void_p()
    _check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(),
                                       0, None, None), "nvrtcCreateProgram")
    try:
        opts = [f"--gpu-architecture={arch}", "--std=c++17", "-default-device",
                *options]
        arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        log = _log(lib, prog)
        import hashlib
        COMPILED[(hashlib.sha256(source.encode()).hexdigest(), arch)] = "warning" in log.lower()
        if rc != 0:
            raise NvrtcError(f"NVRTC could not compile {name} for {arch} "
                             f"({lib.nvrtcGetErrorString(rc).decode()}):\n{log}")
        if warnings_fail and "warning" in log.lower():
            raise NvrtcError(f"NVRTC warned while compiling {name} for {arch}:\n{log}")
        size = ctypes.c_size_t()
        _check(lib, lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "nvrtcGetCUBINSize")
        buf = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetCUBIN(prog, buf), "nvrtcGetCUBIN")
        return buf.raw
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _log(lib, prog) -> str:
    size = ctypes.c_size_t()
    if lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)) != 0 or size.value <= 1:
        return ""
    buf = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, buf)
    return buf.value.decode(errors="replace").strip()


def _check(lib, rc, what):
    if rc != 0:
        raise NvrtcError(f"{what} failed: {lib.nvrtcGetErrorString(rc).decode()}")
