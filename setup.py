"""Build the Cython extensions of vmc (every ``vmc/**/*.pyx``) with numpy headers.

Compiler directives are set once here. ``VMC_CYTHON_DEBUG=1`` turns bounds and
wraparound checks back on for debugging.
"""
import os
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("VMC_CYTHON_DEBUG") == "1"
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}


def extensions():
    exts = []
    for pyx in sorted(Path("vmc").rglob("*.pyx")):
        name = ".".join(pyx.with_suffix("").parts)
        exts.append(Extension(
            name, [str(pyx)],
            include_dirs=[np.get_include(), str(pyx.parent)],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
        ))
    return cythonize(exts, compiler_directives=DIRECTIVES, quiet=True)


setup(ext_modules=extensions())
