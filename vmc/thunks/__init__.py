"""How ops run on the CPU: numpy/scipy thunks, Cython BLAS thunks and generated C."""
from .registry import PY_THUNKS, py_thunk, register
from . import numpy_thunks  # noqa: F401  (registers the core thunks)

__all__ = ["PY_THUNKS", "py_thunk", "register"]
