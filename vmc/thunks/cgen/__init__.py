"""Generated C for the CPU: fused elementwise kernels, their math library
(vmc_math.h) and the compile cache.

Imports nothing from vmc.graph or vmc.tensor: the fusion pass describes a
group as a ``KernelSpec`` and gets ``CThunk``s back.
"""
from .cache import (CompileError, cache_clear, cache_info, compile_module, compiledir,
                    compiler, have_compiler)
from .elemwise import KernelSpec, block_cache_info, block_cache_release, build_kernels

__all__ = ["CompileError", "KernelSpec", "block_cache_info", "block_cache_release",
           "build_kernels", "cache_clear", "cache_info", "compile_module", "compiledir",
           "compiler", "have_compiler"]
