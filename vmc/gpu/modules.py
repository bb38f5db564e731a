"""Kernel modules: dialect source -> compiled kernels, once per device and source.

All the kernels one compiled function needs are generated into one module and
compiled together by the device's driver (NVRTC + cuModuleLoadData for CUDA,
PyOpenCL for OpenCL). ``SOURCES`` keeps every distinct module source built in
this process: the tests compile each with NVRTC for sm_90 (``tests/gpu``), so
a kernel CI runs on PoCL is also one NVRTC accepts without a warning.
"""
from __future__ import annotations

import hashlib

from .codegen import preamble

SOURCES: dict = {}          # sha256 -> full source, in the order first built
_BUILT: dict = {}           # (device name, sha256) -> the driver's compiled module
_KERNELS: dict = {}         # (device name, sha256, kernel name, local) -> Kernel


def full_source(body: str) -> str:
    return preamble() + body


def build(dev, body: str, kernels: dict) -> dict:
    """``{name: Kernel}`` of ``kernels`` (name -> work-group size) in ``body``."""
    source = full_source(body)
    digest = hashlib.sha256(source.encode()).hexdigest()
    key = (dev.name, digest)
    module = _BUILT.get(key)
    if module is None:
        module = dev.keep.compile(dev, source)
        _BUILT[key] = module
        SOURCES.setdefault(digest, source)
    out = {}
    for name, local in kernels.items():
        k = _KERNELS.get(key + (name, local))
        if k is None:
            k = _KERNELS[key + (name, local)] = module.kernel(name, local)
        out[name] = k
    return out
