"""Stock kernels: the kernels almost every program has, built with the package.

A bias gradient is a sum over the batch, a bias add or a residual is one add: unfused
single reductions and binary operations of float32/float64 arrays of up to two dims. Yet
a reduction is the costliest kind of kernel to compile (its lane-parallel row loop: 40-70
ms of gcc, against 5 for an add), and each program paid for its own. ``setup.py`` builds
these specs, from this generator, into one library next to this file
(``_stock_kernels`` + EXT_SUFFIX); ``build_kernels`` takes a spec from it when it is
there and compiles only the others. A 10-layer MLP step compiles 3 kernels fewer (gcc
0.37 -> 0.27 s cold); a function whose kernels are all stock compiles no C at all.

The library carries the key it was built under: this generator's code and settings, the
headers, the compiler and its flags. At run time it is used only when the key is the one
these would give now, so the code run is byte for byte what compiling the spec here
would produce, and an old build or other flags (``VMC_CFLAGS``) fall back to compiling.

Loadable without importing vmc (setup.py runs before vmc's extensions are built): it
imports only its siblings, which import numpy and the standard library.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import itertools
import os
import subprocess
import tempfile
from pathlib import Path

from . import cache, scalar_c
from .elemwise import REUSE_MAX_BYTES, KernelSpec, module_source, source_alias

LIBRARY = Path(__file__).with_name("_stock_kernels" + cache.EXT_SUFFIX)
DTYPES = ("float32", "float64")
REDUCTIONS = tuple(scalar_c.REDUCE)    # add, maximum, minimum
BINARY = ("add", "sub", "mul", "true_div")
# Input broadcast patterns of a binary op: same shape, a row or a column broadcast
# against a matrix (a bias, a per-example scale), either way round.
F, T = False, True
_PATTERNS = (((F,), (F,)), ((F, F), (F, F)), ((F, F), (T, F)), ((T, F), (F, F)),
             ((F, F), (F, T)), ((F, T), (F, F)))


def reduction_spec(op: str, dtype: str, ndim: int, axes: tuple) -> KernelSpec:
    """A reduction no producer was fused into (vmc.thunks.elemwise_c.careduce_kernel_spec)."""
    return KernelSpec(inputs=((dtype, (False,) * ndim),), body=(),
                      outputs=(("i0", dtype),), reduce=(op, axes, False))


def binary_spec(op: str, dtype: str, bcast: tuple, inplace: tuple) -> KernelSpec:
    """One unfused Elemwise op (vmc.thunks.elemwise_c.elemwise_kernel_spec)."""
    return KernelSpec(inputs=tuple((dtype, b) for b in bcast),
                      body=(("t0", op, ("i0", "i1"), dtype),), constants=(),
                      outputs=(("t0", dtype),), inplace=inplace, reduce=None)


def specs() -> list:
    """Every stock spec, in the library's table order."""
    out = []
    for dtype, op in itertools.product(DTYPES, REDUCTIONS):
        for ndim in (1, 2):
            for r in range(1, ndim + 1):
                out += [reduction_spec(op, dtype, ndim, axes)
                        for axes in itertools.combinations(range(ndim), r)]
    for dtype, op, bcast in itertools.product(DTYPES, BINARY, _PATTERNS):
        out.append(binary_spec(op, dtype, bcast, ()))
        # the output may overwrite an input of its shape (the first one that dies)
        out += [binary_spec(op, dtype, bcast, ((0, i),))
                for i, b in enumerate(bcast) if not any(b)]
    return out


def key(stock_specs: list | None = None) -> str | None:
    """What the library must have been built under to be used now; None without a
    compiler (nothing to compare the build against)."""
    cc = cache.compiler()
    if cc is None:
        return None
    h = hashlib.sha256()
    for part in (source_alias(stock_specs or specs(), REUSE_MAX_BYTES), cache.headers_digest(),
                 cache.compiler_identity(cc), " ".join(cache.compile_flags())):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def source(build_key: str) -> str:
    """The library's C: the kernels and the key they were built under."""
    src, index = module_source(specs(), REUSE_MAX_BYTES)
    assert index == list(range(len(index))), "stock specs must be distinct"
    return (src + "__attribute__((visibility(\"default\"))) const char *const "
            f"vmc_stock_key = \"{build_key}\";\n")


def build(out: str | os.PathLike) -> None:
    """Compile the library into ``out`` (setup.py), exactly as ``cached_library`` would
    compile its source; a no-op when ``out`` was built under the current key."""
    out, build_key = Path(out), key()
    if build_key is None:
        raise cache.CompileError("no C compiler found (set CC)")
    if _built_key(out) == build_key:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "stock_kernels.c"
        src.write_text(source(build_key))
        tmp_out = Path(tmp) / out.name
        cmd = cache.compile_command(cache.compiler(), cache.compile_flags(), src, tmp_out)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise cache.CompileError(f"building the stock kernels failed:\n{' '.join(cmd)}\n"
                                     f"{proc.stderr[-4000:]}")
        os.replace(tmp_out, out)


def info() -> dict:
    """For ``python -m vmc cache info``: the library, its kernel count and whether it is
    used ("current"), or why not ("missing", "stale: ...")."""
    if not LIBRARY.exists():
        status = "missing: reinstall vmc (pip install -e .) to build it"
    elif _built_key(LIBRARY) != key():
        status = "stale (built by another vmc, compiler or flags): reinstall vmc to rebuild it"
    else:
        status = "current"
    return {"stock library": str(LIBRARY), "stock kernels": len(specs()),
            "stock status": status}


def _built_key(path: Path) -> str | None:
    try:
        return ctypes.c_char_p.in_dll(ctypes.CDLL(str(path)), "vmc_stock_key").value.decode()
    except (OSError, ValueError):
        return None


_loaded: dict = {}


def table(load) -> tuple:
    """(the library's kernel table as ``load(path)`` gives it, {spec: its index}), or
    (None, {}) when the library is missing or was built under another key. Looked up
    once per compiler and flags."""
    cc = cache.compiler()
    memo = (tuple(cc or ()), tuple(cache.compile_flags()))
    if memo not in _loaded:
        found = (None, {})
        stock_specs = specs()
        if cc and LIBRARY.exists() and _built_key(LIBRARY) == key(stock_specs):
            with contextlib.suppress(ImportError, OSError):   # then compile them, as without
                found = (load(str(LIBRARY)), {s: i for i, s in enumerate(stock_specs)})
        _loaded[memo] = found
    return _loaded[memo]
