"""Generated C for the CPU: fused elementwise kernels, their math library
(vmc_math.h) and the compile cache.

Imports nothing from vmc.graph or vmc.tensor: the fusion pass describes a
group as a ``KernelSpec`` and gets ``CThunk``s back.
"""
from .cache import cache_clear, cache_info, compile_module, compiledir, have_compiler
from .elemwise import KernelSpec, build_kernels

__all__ = ["KernelSpec", "build_kernels", "cache_clear", "cache_info", "compile_module",
           "compiledir", "have_compiler"]
