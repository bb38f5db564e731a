"""Build the Cython extensions of vmc (every ``vmc/**/*.pyx``) with numpy headers, the
C driver of the generated elementwise kernels (``vmc/thunks/cgen/_ew_runtime.c``), and the
stock kernels (``vmc/thunks/cgen/stock.py``: a plain C library the generator writes and
compiles as it would at run time; not a Python module).

Compiler directives are set once here. ``VMC_CYTHON_DEBUG=1`` turns bounds and
wraparound checks back on for debugging.
"""
import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("VMC_CYTHON_DEBUG") == "1"
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}


# As for the generated kernels (vmc/thunks/cgen/cache.py): no errno and no traps let
# vmc_math.h's selects if-convert, so its loops vectorize; no contraction keeps numpy's
# rounding. Never -ffast-math.
MATH_FLAGS = ["-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
STOCK = "vmc.thunks.cgen._stock_kernels"    # built by BuildExt through vmc/thunks/cgen/stock.py


def extensions():
    exts = []
    for pyx in sorted(Path("vmc").rglob("*.pyx")):
        name = ".".join(pyx.with_suffix("").parts)
        exts.append(Extension(
            name, [str(pyx)],
            include_dirs=[np.get_include(), str(pyx.parent), "vmc"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=(["-O3"] if not DEBUG else ["-O0", "-g"]) + MATH_FLAGS,
            # Cython tracks the headers a .pyx names, not those they include
            # (conv_direct.h includes conv_direct_body.h): rebuild on any header here
            depends=[str(h) for h in sorted(pyx.parent.glob("*.h"))],
            # the GPU core finds the drivers' entry points with dlopen/dlsym
            libraries=["dl"] if pyx.parent.name == "gpu" else [],
        ))
    return (cythonize(exts, compiler_directives=DIRECTIVES, quiet=True)
            + [ew_runtime(), Extension(STOCK, sources=[])])


def ew_runtime():
    """The elementwise kernels' driver, in C, tagged with the digest of the headers it
    is built from (vmc/thunks/cgen/headers.py; a stale build is refused at run time)."""
    spec = importlib.util.spec_from_file_location("vmc_headers", "vmc/thunks/cgen/headers.py")
    headers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(headers)
    cgen = Path("vmc/thunks/cgen")
    return Extension(
        "vmc.thunks.cgen._ew_runtime", [str(cgen / "_ew_runtime.c")],
        include_dirs=[np.get_include(), str(cgen), "vmc"],
        depends=[str(h) for d in (cgen, Path("vmc")) for h in sorted(d.glob("*.h"))],
        define_macros=[("VMC_HEADERS_DIGEST", f'"{headers.headers_digest()}"')],
        extra_compile_args=["-O2", "-Wno-unused-function", "-pthread"] + MATH_FLAGS,
        extra_link_args=["-pthread"],
    )


def cgen_module(name: str):
    """A module of vmc/thunks/cgen, loaded without importing vmc (which needs the
    extensions this builds): its directory becomes a bare package."""
    pkg = types.ModuleType("_vmc_cgen_setup")
    pkg.__path__ = [str(Path("vmc/thunks/cgen").resolve())]
    sys.modules.setdefault(pkg.__name__, pkg)
    return importlib.import_module(f"{pkg.__name__}.{name}")


class BuildExt(build_ext):
    def build_extension(self, ext):
        if ext.name == STOCK:
            cgen_module("stock").build(self.get_ext_fullpath(ext.name))
        else:
            super().build_extension(ext)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
