"""Importing vmc and its peers, once per process, with single-thread settings.

Each getter returns the imported module (or an adapter) or raises: ``Missing`` when a peer is
not installed, ``RuntimeError`` when vmc (or a peer) is there but fails to import. Failures are
remembered, so a broken import costs one attempt per process.

``python -m bench.peers`` prints a JSON object with the versions of everything, the default
PyTensor linker and whether vmc imports: the header of RESULTS.md.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from bench.harness import Missing, describe_exception

_cache: dict = {}


def _once(name: str, load: Callable[[], Any]) -> Any:
    if name not in _cache:
        try:
            _cache[name] = (True, load())
        except Exception as exc:                          # noqa: BLE001 - remembered
            _cache[name] = (False, exc)
    ok, value = _cache[name]
    if ok:
        return value
    raise value


def _import_peer(module: str, pip_name: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Missing(f"{pip_name} not installed ({exc}); pip install {pip_name}") from None


# ---------------------------------------------------------------------------------------------
# vmc


def _load_vmc():
    try:
        import vmc
        import vmc.tensor  # noqa: F401
    except Exception as exc:                              # noqa: BLE001 - reported per row
        raise RuntimeError(f"import vmc: {describe_exception(exc)}") from None
    return vmc


def vmc():
    """The vmc package; raises RuntimeError('import vmc: ...') while it cannot be imported."""
    return _once("vmc", _load_vmc)


# ---------------------------------------------------------------------------------------------
# numpy-world peers


def numexpr():
    def load():
        ne = _import_peer("numexpr", "numexpr")
        if os.environ.get("BENCH_THREADS") != "all":      # else numexpr's default
            ne.set_num_threads(int(os.environ.get("NUMEXPR_NUM_THREADS", "1")))
        return ne
    return _once("numexpr", load)


def jax():
    """``(jax, jax.numpy)`` on the CPU with float64 enabled."""
    def load():
        j = _import_peer("jax", "jax[cpu]")
        j.config.update("jax_enable_x64", True)
        j.config.update("jax_platforms", os.environ.get("BENCH_JAX_PLATFORM", "cpu"))
        import jax.numpy as jnp
        return j, jnp
    return _once("jax", load)


def torch():
    def load():
        t = _import_peer("torch", "torch==2.13.0")
        if os.environ.get("BENCH_THREADS") == "all":       # torch's default threading
            return t
        threads = int(os.environ.get("BENCH_THREADS", "1"))
        t.set_num_threads(threads)
        try:
            t.set_num_interop_threads(threads)
        except RuntimeError:
            pass
        return t
    return _once("torch", load)


def torch_compile(fn: Callable) -> Callable:
    """``torch.compile(fn)``; compilation happens on the first call, as usual."""
    t = torch()
    if not hasattr(t, "compile"):
        raise Missing(f"torch {t.__version__} has no torch.compile")
    return t.compile(fn)


# ---------------------------------------------------------------------------------------------
# Theano-like libraries: vmc and PyTensor through one adapter, so a benchmark graph is written
# once and built by both.


@dataclass
class TheanoLike:
    name: str
    lib: Any                 # vmc or pytensor
    T: Any                   # vmc.tensor or pytensor.tensor
    softmax: Callable
    log_softmax: Callable
    mode: Any = None         # what goes to function(mode=...)

    def function(self, inputs, outputs, updates=None, trust_input=False, steady=True, **kw):
        """``lib.function``; ``trust_input`` as vmc's keyword (PyTensor has none) and as
        the ``f.trust_input = True`` attribute that both document. ``steady``: return it
        running its optimized build (vmc compiles long fused kernels in tiers, the second
        in the background: ``f.wait_compiled()``); group E, which times the first
        result, passes False."""
        if trust_input and self.name.startswith("vmc"):
            kw["trust_input"] = True
        f = self.lib.function(inputs, outputs, updates=updates or [], mode=self.mode, **kw)
        if trust_input:
            f.trust_input = True
        if steady and hasattr(f, "wait_compiled"):
            f.wait_compiled()
        return f

    def shared(self, value, name=None):
        return self.lib.shared(value, name=name)

    def grad(self, cost, wrt):
        return self.lib.grad(cost, wrt)

    def scan(self, fn, **kw):
        """``(outputs, updates)`` whichever way the library returns them. vmc's scan is
        ``vmc.scan``; while ``vmc/__init__`` does not import it yet, ``import vmc.scan``."""
        if not hasattr(self.lib, "scan") and self.name.startswith("vmc"):
            importlib.import_module("vmc.scan")
        out = self.lib.scan(fn, **kw)
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
            return out
        return out, {}


def _vmc_softmax(vt):
    nnet = getattr(vt, "nnet", None)
    sm = getattr(nnet, "softmax", None) or getattr(vt, "softmax", None)
    lsm = getattr(nnet, "log_softmax", None) or getattr(vt, "log_softmax", None)
    if sm is None:
        raise RuntimeError("vmc.tensor has neither nnet.softmax nor softmax")
    if lsm is None:
        lsm = lambda x: vt.log(sm(x))                      # noqa: E731 - rewritten by vmc
    return sm, lsm


def vmc_fn(mode: Any = None, label: str = "vmc") -> TheanoLike:
    v = vmc()
    import vmc.tensor as vt
    sm, lsm = _vmc_softmax(vt)
    return TheanoLike(label, v, vt, sm, lsm, mode)


def vmc_mode_without_fusion():
    """A vmc mode with elementwise fusion off, whichever spelling vmc offers."""
    v = vmc()
    tries = []
    for spelling in ("Mode", "compile.Mode", "opt.Mode", "opt.pipeline.Mode"):
        try:
            obj = importlib.import_module("vmc." + spelling.rsplit(".", 1)[0]) \
                if "." in spelling else v
            obj = getattr(obj, spelling.rsplit(".", 1)[-1])
            return obj(optimizer="fast_run").excluding("fusion")
        except Exception as exc:                          # noqa: BLE001 - try the next one
            tries.append(f"vmc.{spelling}(optimizer='fast_run').excluding('fusion'): "
                         f"{describe_exception(exc, 160)}")
    raise RuntimeError("no way to exclude fusion: " + "; ".join(tries))


def _load_pytensor():
    pytensor = _import_peer("pytensor", "pytensor")
    import pytensor.tensor as pt
    return pytensor, pt


def pytensor_fn(linker: str | None = "cvm", exclude: tuple = ()) -> TheanoLike:
    """PyTensor with ``Mode(linker=linker, optimizer='fast_run')``, or its default mode."""
    pytensor, pt = _once("pytensor", _load_pytensor)
    from pytensor.compile.mode import Mode, get_default_mode
    mode = Mode(linker=linker, optimizer="fast_run") if linker else get_default_mode()
    if exclude:
        mode = mode.excluding(*exclude)
    sm = lambda x: pt.special.softmax(x, axis=-1)          # noqa: E731
    lsm = lambda x: pt.special.log_softmax(x, axis=-1)     # noqa: E731
    return TheanoLike(f"pytensor {linker or 'default'}", pytensor, pt, sm, lsm, mode)


def pytensor_default_linker() -> str:
    try:
        _once("pytensor", _load_pytensor)
        from pytensor.compile.mode import get_default_mode
        return type(get_default_mode().linker).__name__.replace("Linker", "").lower() or "?"
    except Exception as exc:                              # noqa: BLE001 - cosmetic
        return f"unknown ({type(exc).__name__})"


# ---------------------------------------------------------------------------------------------
# Versions, for the header of RESULTS.md


def _dist_version(name: str) -> str:
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict:
    import numpy
    import scipy
    out = {"python": sys.version.split()[0], "numpy": numpy.__version__,
           "scipy": scipy.__version__}
    try:
        v = vmc()
        out["vmc"] = str(getattr(v, "__version__", _dist_version("vmc")))
    except Exception as exc:                              # noqa: BLE001 - reported
        out["vmc"] = f"failed ({exc})"
    for dist in ("pytensor", "jax", "jaxlib", "torch", "numexpr", "numba", "pycuda"):
        out[dist] = _dist_version(dist)
    if out["pytensor"] != "not installed":
        out["pytensor"] += f" (default mode linker: {pytensor_default_linker()})"
    return out


def cpu_and_blas() -> dict:
    """The vector ISA vmc compiles its kernels for, and the OpenBLAS kernels every loaded
    BLAS runs (threadpoolctl's "architecture": ``OPENBLAS_CORETYPE`` pins an older core
    type than the CPU's on some machines), with the OPENBLAS_* variables that choose them."""
    out = {}
    try:
        vmc()
        from vmc.thunks.cgen.cache import isa
        level, flags = isa()
        out["isa"] = f"{level} ({' '.join(flags) or 'no -m flags'})"
    except Exception as exc:                              # noqa: BLE001 - cosmetic
        out["isa"] = f"unknown ({describe_exception(exc, 120)})"
    try:
        import scipy.linalg  # noqa: F401 - loads scipy's own OpenBLAS
        from threadpoolctl import threadpool_info
        blas = [f"{os.path.basename(i['filepath']).split('-')[0]}: {i.get('internal_api')} "
                f"{i.get('version')} {i.get('architecture', '?')}"
                for i in threadpool_info() if i.get("user_api") == "blas"]
        out["blas_core_type"] = "; ".join(sorted(blas)) or "?"
    except Exception as exc:                              # noqa: BLE001 - cosmetic
        out["blas_core_type"] = f"unknown ({describe_exception(exc, 120)})"
    env = [f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
           if k in os.environ]
    out["openblas_env"] = ", ".join(env) or "unset"
    return out


if __name__ == "__main__":
    json.dump({**versions(), "machine": cpu_and_blas()}, sys.stdout)
