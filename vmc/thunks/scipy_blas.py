"""Load ``scipy.linalg.cython_blas`` without running ``scipy/linalg/__init__.py``.

The BLAS thunks (``_blas.pyx``) cimport their gemm, gemv, ger and dot from
``scipy.linalg.cython_blas``; Cython imports that module by its full name when
``_blas`` loads, and Python imports a module's parent package first. scipy.linalg's
``__init__`` imports all of scipy.linalg and scipy's array-API layer: 0.42 s here, of
which the BLAS table needs nothing. Loaded as a module of its own (it imports only the
light ``scipy`` package), it takes 0.05 s, and it is the same extension module with the
same function pointers. A later ``import scipy.linalg`` finds it in ``sys.modules``.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

NAME = "scipy.linalg.cython_blas"


def preload() -> None:
    """Put ``scipy.linalg.cython_blas`` in ``sys.modules`` if it is not there; on any
    trouble, leave it to the normal import (which then runs scipy.linalg's __init__)."""
    if NAME in sys.modules:
        return
    try:
        scipy_spec = importlib.util.find_spec("scipy")
        where = Path(next(iter(scipy_spec.submodule_search_locations))) / "linalg"
        path = next((where / f"cython_blas{s}" for s in importlib.machinery.EXTENSION_SUFFIXES
                     if (where / f"cython_blas{s}").exists()), None)
        if path is None:
            return
        loader = importlib.machinery.ExtensionFileLoader(NAME, str(path))
        spec = importlib.util.spec_from_file_location(NAME, str(path), loader=loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = module
        spec.loader.exec_module(module)
    except Exception:      # noqa: BLE001 - the normal import path still works
        sys.modules.pop(NAME, None)
