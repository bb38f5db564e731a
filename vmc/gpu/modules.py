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
_BUILT: dict = {}           # (device name, sha256) -> {kernel name: Kernel}


def full_source(body: str) -> str:
    return preamble() + body


def build(dev, body: str, kernels: dict) -> dict:
    """``{name: Kernel}`` of ``kernels`` (name -> work-group size) in ``body``."""
    source = full_source(body)
    digest = hashlib.sha256(source.encode()).hexdigest()
    key = (dev.name, digest)
    got = _BUILT.get(key)
    if got is None:
        got = dev.keep.compile(dev, source, kernels)
        _BUILT[key] = got
        SOURCES.setdefault(digest, source)
    return got
