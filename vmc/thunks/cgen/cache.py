"""Compile C source into CPython extension modules or plain libraries, cached on disk.

``compile_module(sources, name_hint)`` wraps ``sources`` in a module prelude
(Python.h, numpy, vmc_thunk.h) and postlude (``PyInit``), compiles it with the
system C compiler and loads it with importlib's ExtensionFileLoader.
``cached_library(alias, make_source, name_hint, load)`` compiles the source
``make_source()`` returns as it is, into a plain shared library (generated
kernels: no Python.h, whose parsing would be most of a small kernel's compile
time), and returns ``load(path)``; the source is named by ``alias`` and
generated only when no earlier build recorded which entry the alias stands for.

The source declares what the module exports::

    static const vmc_export VMC_EXPORTS[] = {{"k0", k0, sizeof(k0_ctx), k0_clear}, {NULL}};
    static PyMethodDef VMC_METHODS[] = {{NULL}};   /* extra Python functions */

Each export becomes a module attribute holding a PyCapsule named "vmc_thunk"
(the function pointer); ``module.new_ctx(i)`` returns a fresh zeroed
"vmc_ctx" capsule of export i's ``ctx_size`` (None when 0) whose destructor
calls ``ctx_clear`` first.

Cache entries live in ``compiledir()``, named by a hash of everything that
changes the binary: the source, the headers it can include, the compiler
(path, size, mtime), the flags (which include the CPU features chosen), the
Python ABI and the numpy version. Entries are written atomically (temporary
file + ``os.replace``) under a per-entry ``flock``, so concurrent processes
build each entry once; an entry that fails to load is rebuilt. Every compiler
invocation appends a line to ``build.log`` there.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
import weakref
from pathlib import Path

import numpy as np

from . import entries
from .entries import PREFIX
from .headers import HEADER_DIRS, headers_digest

INCLUDE_DIRS = (*HEADER_DIRS, Path(np.get_include()),
                Path(sysconfig.get_paths()["include"]),
                Path(sysconfig.get_paths()["platinclude"]))
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
BUILD_LOG = "build.log"


class CompileError(RuntimeError):
    """The C compiler rejected generated source (a bug in the generator)."""


PRELUDE = r"""#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL vmc_ARRAY_API
#include <numpy/arrayobject.h>
#include "vmc_thunk.h"
typedef struct {
    const char *name;
    vmc_thunk_fn fn;
    size_t ctx_size;             /* 0: the thunk keeps no state */
    void (*ctx_clear)(void *);   /* releases what the ctx holds, or NULL */
} vmc_export;
"""

POSTLUDE = r"""
static void vmc__ctx_destroy(PyObject *cap) {
    void *ctx = PyCapsule_GetPointer(cap, VMC_CTX_CAPSULE);
    const vmc_export *e = (const vmc_export *)PyCapsule_GetContext(cap);
    if (ctx && e && e->ctx_clear) e->ctx_clear(ctx);
    PyMem_Free(ctx);
}
static PyObject *vmc__new_ctx(PyObject *self, PyObject *arg) {
    Py_ssize_t i = PyLong_AsSsize_t(arg), n = 0;
    if (i == -1 && PyErr_Occurred()) return NULL;
    while (VMC_EXPORTS[n].name) n++;
    if (i < 0 || i >= n) { PyErr_SetString(PyExc_IndexError, "no such export"); return NULL; }
    const vmc_export *e = &VMC_EXPORTS[i];
    if (!e->ctx_size) Py_RETURN_NONE;
    void *ctx = PyMem_Calloc(1, e->ctx_size);
    if (!ctx) return PyErr_NoMemory();
    PyObject *cap = PyCapsule_New(ctx, VMC_CTX_CAPSULE, vmc__ctx_destroy);
    if (!cap) { PyMem_Free(ctx); return NULL; }
    if (PyCapsule_SetContext(cap, (void *)e) < 0) { Py_DECREF(cap); return NULL; }
    return cap;
}
static PyMethodDef vmc__methods[] = {
    {"new_ctx", vmc__new_ctx, METH_O, "new_ctx(i): a fresh context capsule for export i"},
    {NULL, NULL, 0, NULL}};
static struct PyModuleDef vmc__moddef = {PyModuleDef_HEAD_INIT, "@NAME@", NULL, -1, vmc__methods};
PyMODINIT_FUNC PyInit_@NAME@(void) {
    import_array();
    PyObject *m = PyModule_Create(&vmc__moddef);
    if (!m) return NULL;
    if (PyModule_AddFunctions(m, VMC_METHODS) < 0) goto fail;
    for (const vmc_export *e = VMC_EXPORTS; e->name; e++) {
        PyObject *cap = PyCapsule_New((void *)e->fn, VMC_THUNK_CAPSULE, NULL);
        if (!cap || PyModule_AddObject(m, e->name, cap) < 0) { Py_XDECREF(cap); goto fail; }
    }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
"""

_memo: dict = {}                 # key -> loaded module, or weak reference to a library
_thread_lock = threading.RLock()
_key_locks: dict = {}            # key -> the lock its build holds
_compiler_state: dict = {}       # memo of compiler(), have_compiler()


# ----------------------------------------------------------------- settings

def compiledir() -> Path:
    """``vmc.config.compiledir`` if set, else ``$VMC_COMPILEDIR``, else ~/.cache/vmc
    (in a ``directory(d)`` block of this thread: ``d``)."""
    if getattr(_here, "dir", None) is not None:
        return _here.dir
    try:
        cfg = importlib.import_module("vmc.config")
        cfg = getattr(cfg, "config", cfg)
        d = getattr(cfg, "compiledir", None)
    except ImportError:
        d = None
    d = d or os.environ.get("VMC_COMPILEDIR") or Path.home() / ".cache" / "vmc"
    return Path(d).expanduser()


_here = threading.local()


@contextlib.contextmanager
def directory(d: Path):
    """Within the block, this thread's cache is ``d`` (a background build keeps the
    directory its function was compiled with: tiers.py)."""
    old = getattr(_here, "dir", None)
    _here.dir = Path(d)
    try:
        yield
    finally:
        _here.dir = old


def compiler() -> list | None:
    """The C compiler command ($CC, Python's own CC, cc, gcc), or None."""
    if "cc" not in _compiler_state:
        cands = [os.environ.get("CC", ""), sysconfig.get_config_var("CC") or "", "cc", "gcc"]
        found = None
        for cand in cands:
            argv = shlex.split(cand)
            if argv and shutil.which(argv[0]):
                found = [shutil.which(argv[0])] + argv[1:]
                break
        _compiler_state["cc"] = found
    return _compiler_state["cc"]


def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# The widest vector ISA first: (level, what /proc/cpuinfo must list, gcc flags).
# AVX-512 with 512-bit vectors: gcc's default for it is 256-bit vectors; 512 measured
# 1.9x faster on B's exp/tanh kernel (float64, 1M, one thread) on a Zen 4/5 EPYC.
X86_LEVELS = (
    ("avx512", {"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx2", "fma"},
     ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma",
      "-mprefer-vector-width=512"]),
    ("avx2", {"avx2", "fma"}, ["-mavx2", "-mfma"]),
    ("avx", {"avx"}, ["-mavx"]),
    ("sse4.1", {"sse4_1"}, ["-msse4.1"]),
)


def isa() -> tuple:
    """(level, flags): the widest vector ISA this CPU has ("avx512", "avx2", "avx",
    "sse4.1", "sse2"), or on another architecture its name and no flags (NEON is
    aarch64's baseline, so the compiler's default already uses it)."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i686", "i386"):
        return machine, []
    cpu = _cpu_flags()
    for level, needs, flags in X86_LEVELS:
        if needs <= cpu:
            return level, list(flags)
    return "sse2", []


def compile_flags() -> list:
    """Optimization flags; the ISA extensions are the CPU's widest (``isa()``), and
    ``VMC_CFLAGS`` comes last, so it can pin another (``-mno-avx512f``, ...). The flags
    are part of every cache key, so kernels built for one ISA never load on another.

    -ffp-contract=off keeps a*b+c rounded twice like numpy (explicit fma() in
    vmc_math.h still fuses); -fno-math-errno and -fno-trapping-math let sqrt,
    floor and rint inline and let selects if-convert. No -ffast-math.
    """
    flags = ["-O3", "-std=gnu11", "-fPIC", "-shared", "-fno-math-errno",
             "-fno-trapping-math", "-ffp-contract=off", "-fvisibility=hidden",
             "-fno-semantic-interposition", "-Wno-unused-function"]
    flags += isa()[1]
    flags += shlex.split(os.environ.get("VMC_CFLAGS", ""))
    return flags


def compiler_identity(cc: list) -> str:
    st = os.stat(cc[0])
    return f"{os.path.realpath(cc[0])}:{st.st_size}:{st.st_mtime_ns}:{' '.join(cc[1:])}"


def _key(kind: str, sources: str, cc: list, flags: list) -> str:
    h = hashlib.sha256()
    for part in (kind, PRELUDE, POSTLUDE, sources, compiler_identity(cc), " ".join(flags),
                 headers_digest(), sys.implementation.cache_tag, EXT_SUFFIX,
                 sys.version, np.__version__):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------- compiling

def have_compiler(probe: bool = True) -> bool:
    """True when a C compiler builds and loads a Python extension here.

    Probed once per compiler and flags (a marker file in compiledir); without
    one, warns once and callers fall back to numpy thunks. A module built
    successfully answers the question too. ``probe=False`` answers without
    compiling anything: False only when it is known that there is none (a
    caller that then fails to compile asks again with the probe, which costs
    a compiler run only on that failure path: an empty cache stays cheap).
    """
    if "ok" in _compiler_state:
        return _compiler_state["ok"]
    cc = compiler()
    if cc is None:
        # Said here, not only by the probe: callers ask with probe=False first,
        # and without a compiler they never came to the probe (no warning at all).
        return _no_compiler("no C compiler found ($CC, Python's CC, cc and gcc are not on "
                            "PATH); install one (Debian/Ubuntu: apt-get install gcc "
                            "python3-dev) or set CC")
    if not probe:
        return True
    try:
        compile_module("static const vmc_export VMC_EXPORTS[] = {{NULL}};\n"
                       "static PyMethodDef VMC_METHODS[] = {{NULL}};\n", "probe")
    except (CompileError, OSError, ImportError) as e:
        return _no_compiler(f"{' '.join(cc)} cannot build extension modules: {str(e)[:300]}")
    _compiler_state["ok"] = True
    return True


def _no_compiler(why):
    """Warn (once per process: the answer is memoized) and answer False."""
    warnings.warn(f"vmc: {why}; elementwise kernels run as numpy thunks "
                  "(slower, same results)", RuntimeWarning, stacklevel=3)
    _compiler_state["ok"] = False
    return False


def compile_module(sources: str, name_hint: str = "mod"):
    """Compile (or fetch from the cache) ``sources``; return the loaded module."""
    return _compiled("module", sources, name_hint, EXT_SUFFIX, _load_module,
                     lambda name: PRELUDE + sources + POSTLUDE.replace("@NAME@", name))


def cached_library(alias: str, make_source, name_hint: str, load, extra_flags=(),
                   only_cached: bool = False):
    """Compile (or fetch) the plain C of ``make_source()`` into a shared library
    and return ``load(path)`` (which raises ImportError or OSError for an unusable
    file), without calling ``make_source`` when an earlier process recorded which
    entry ``alias`` stands for: generating a large module's C costs more than
    loading it. ``extra_flags`` follow the usual flags (a later -O wins).

    ``alias`` must determine the source: the caller hashes its inputs and its
    generator's code. It is keyed like a source (compiler, flags, headers,
    ABI), and the record is written only after the entry built and loaded;
    an entry that is gone or fails to load is generated and built again. With
    ``only_cached``, None instead of building.
    """
    cc = compiler()
    if cc is None:
        raise CompileError("no C compiler found (set CC)")
    flags = compile_flags() + list(extra_flags)
    record = compiledir() / f"{PREFIX}alias_{_key('alias', alias, cc, flags)[:40]}"
    try:
        key = record.read_text()
    except OSError:
        key = ""
    if re.fullmatch(r"[0-9a-f]{64}", key):
        mod = _compiled_by_key("library", key, name_hint, ".so",
                               lambda name, so: load(str(so)), None, cc, flags)
        if mod is not None:
            return mod
    if only_cached:
        return None
    sources = make_source()
    key = _key("library", sources, cc, flags)
    mod = _compiled_by_key("library", key, name_hint, ".so", lambda name, so: load(str(so)),
                           lambda name: sources, cc, flags)
    with contextlib.suppress(OSError):
        write_atomic(record, key.encode())
        entries.note_write(record.parent, [record], record.name)
    return mod


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or all of
    the new one (a temporary file per process and thread, then a rename)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _compiled(kind, sources, name_hint, suffix, load, full_source):
    cc = compiler()
    if cc is None:
        raise CompileError("no C compiler found (set CC)")
    flags = compile_flags()
    key = _key(kind, sources, cc, flags)
    return _compiled_by_key(kind, key, name_hint, suffix, load, full_source, cc, flags)


def _compiled_by_key(kind, key, name_hint, suffix, load, full_source, cc, flags):
    """The module of cache entry ``key``: memoized, loaded, or built from
    ``full_source(name)``; with ``full_source`` None, None when the entry is
    not there to load."""
    mod = _memoized(key)
    if mod is not None:
        return mod
    with _thread_lock:
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:          # one build per entry; other entries build meanwhile (tiers.py)
        mod = _memoized(key)
        if mod is None:
            mod = _load_or_build(key, cc, flags, name_hint, suffix, load, full_source)
            if mod is None:
                return None
            # A plain library is held weakly, so that it can be closed when no
            # function uses it (2000 kernels compiled and dropped kept 10,000
            # mappings); an extension module is never unloaded by CPython.
            try:
                _memo[key] = mod if kind == "module" else weakref.ref(mod)
            except TypeError:           # (an object that takes no weak reference)
                _memo[key] = mod
    return mod


def _memoized(key):
    mod = _memo.get(key)
    return mod() if type(mod) is weakref.ref else mod


def _load_or_build(key, cc, flags, name_hint, suffix, load, full_source):
    hint = re.sub(r"[^A-Za-z0-9_]", "_", name_hint)[:24] or "mod"
    name = f"{PREFIX}{hint}_{key[:20]}"
    d = compiledir()
    d.mkdir(parents=True, exist_ok=True)
    so = d / (name + suffix)
    mod = _try_load(load, name, so)
    if mod is not None or full_source is None:
        return mod
    with _flock(d / (name + ".lock")):
        mod = _try_load(load, name, so)   # another process may have built it meanwhile
        if mod is None:
            _build(name, full_source(name), so, cc, flags)
            mod = _try_load(load, name, so, raise_errors=True)
            _compiler_state.setdefault("ok", True)
    return mod


@contextlib.contextmanager
def _flock(path: Path):
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _try_load(load, name: str, so: Path, raise_errors: bool = False):
    if not so.exists():
        return None
    try:
        if not entries.intact(so):      # loading a damaged file can crash the process
            raise ImportError(f"{so} does not match its seal ({so.name}{entries.SEAL})")
        mod = load(name, so)
    except (ImportError, OSError):
        if raise_errors:
            raise
        return None                     # corrupt or stale entry: the caller rebuilds it
    entries.touch(so)
    return mod


def _load_module(name: str, so: Path):
    loader = importlib.machinery.ExtensionFileLoader(name, str(so))
    spec = importlib.util.spec_from_file_location(name, str(so), loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def compile_command(cc: list, flags: list, src: Path, out: Path) -> list:
    """The compiler's argv that builds the shared library ``out`` from ``src``."""
    return cc + flags + [f"-I{p}" for p in INCLUDE_DIRS] + [str(src), "-o", str(out), "-lm"]


def _build(name: str, source: str, so: Path, cc: list, flags: list) -> None:
    d = so.parent
    tmpdir = Path(tempfile.mkdtemp(prefix=PREFIX + "tmp_", dir=d))
    try:
        src = tmpdir / (name + ".c")
        src.write_text(source)
        out = tmpdir / so.name
        cmd = compile_command(cc, flags, src, out)
        t0 = time.perf_counter()
        proc = _run_compiler(cmd)
        _log_build(d, name, time.perf_counter() - t0, proc.returncode)
        if proc.returncode != 0:
            kept = d / (name + ".failed.c")
            os.replace(src, kept)
            raise CompileError(f"C compilation of {name} failed (source kept in {kept}):\n"
                               f"{' '.join(cmd)}\n{proc.stderr[-4000:]}")
        os.replace(src, d / (name + ".c"))      # kept for reading and debugging
        entries.seal(out, so)
        os.replace(out, so)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    with contextlib.suppress(OSError):
        entries.note_write(d, [so, d / (name + ".c"), so.with_name(so.name + entries.SEAL)],
                           name)


_compilers: set = set()        # compiler processes running now (any thread)
_compilers_lock = threading.Lock()


def _run_compiler(cmd: list) -> subprocess.CompletedProcess:
    """Run the compiler, known to ``stop_compilers`` while it runs."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _compilers_lock:
        _compilers.add(proc)
    try:
        out, err = proc.communicate()
    finally:
        with _compilers_lock:
            _compilers.discard(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def stop_compilers() -> int:
    """End the compilers still running (a background build at exit: without this,
    gcc outlived the process, for minutes on a huge kernel); their builds fail and
    leave nothing in the cache. Returns how many were ended."""
    with _compilers_lock:
        running = list(_compilers)
    for proc in running:
        with contextlib.suppress(OSError):
            proc.kill()
    return len(running)


def _log_build(d: Path, name: str, seconds: float, rc: int) -> None:
    line = f"{time.time():.3f} pid={os.getpid()} rc={rc} {seconds:.3f}s {name}\n"
    fd = os.open(d / BUILD_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())     # one O_APPEND write: lines never interleave
    finally:
        os.close(fd)


# ------------------------------------------------------------- maintenance

def _entries(d: Path):
    return [p for p in d.glob(PREFIX + "*")] + [p for p in (d / BUILD_LOG,) if p.exists()]


def cache_info() -> dict:
    """{'dir': path, 'entries': number of compiled modules, 'graphs': number of
    optimized graphs (``vmc.compile.graph_cache``), 'bytes': disk space taken,
    'max_mb': the bound (``config.compiledir_max_mb``; least recently used
    entries go first)}."""
    d = compiledir()
    bound = entries.limit_bytes() / 2 ** 20
    if not d.is_dir():
        return {"dir": str(d), "entries": 0, "graphs": 0, "bytes": 0, "max_mb": bound}
    files = [p for p in _entries(d) if p.is_file()]
    return {"dir": str(d),
            "entries": sum(1 for p in files if p.name.endswith(".so")),
            "graphs": sum(1 for p in files if p.name.startswith(PREFIX + "graph_")),
            "bytes": sum(entries.disk_bytes(p.stat()) for p in files),   # as bounded
            "max_mb": bound}


def cache_clear() -> None:
    """Remove every entry this cache wrote (and forget loaded modules' keys)."""
    d = compiledir()
    if d.is_dir():
        for p in _entries(d):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
    with _thread_lock:
        _memo.clear()
        _compiler_state.pop("ok", None)
