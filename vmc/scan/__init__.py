"""Loops in the graph: ``vmc.scan`` (Theano's semantics), ``map``, ``reduce``,
``foldl``, ``foldr``, ``until``; the Scan op, its gradient, rewrites and thunk.

``vmc.scan`` is both this package and the function: the package module is
callable (``vmc.scan(fn, ...)`` calls ``scan``), so ``vmc.scan.until``,
``vmc.scan.map`` and ``import vmc.scan`` all work whether ``vmc`` binds the
name to the package or to the function. The function carries ``until`` and
``jacobian`` as attributes for the same reason.
"""
import sys
import types

from .basic import foldl, foldr, map, reduce, scan
from .op import Scan, ScanInfo, build_scan
from .utils import until
from . import thunk as _thunk  # noqa: F401  (registers the Scan thunk)
from . import rewrites as _rewrites  # noqa: F401  (registers the scan rewrites)
from .gradient import jacobian

scan.until = until
scan.jacobian = jacobian
scan.map, scan.reduce, scan.foldl, scan.foldr = map, reduce, foldl, foldr

__all__ = ["scan", "map", "reduce", "foldl", "foldr", "until", "Scan", "ScanInfo",
           "build_scan", "jacobian"]


class _CallableModule(types.ModuleType):
    """``vmc.scan(fn, ...)`` on the package calls ``vmc.scan.scan``."""

    def __call__(self, *args, **kwargs):
        return scan(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
