"""vmc's configuration: ``vmc.config``.

Read once from the ``VMC_FLAGS`` environment variable
(``VMC_FLAGS=floatX=float32,device=cuda``) and changeable at run time, either
by assignment (``vmc.config.floatX = "float32"``) or in a block::

    with vmc.config.change(floatX="float32", optimizer=None):
        ...

Every option is declared here with its default, its allowed values and a
one-line description; an unknown name or a bad value raises at once.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Option:
    default: Any
    doc: str
    parse: Callable[[str], Any] = str
    allowed: tuple | None = None


def _bool(s: str) -> bool:
    low = str(s).strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean, got {s!r}")


def parse_device(s):
    """cpu, cuda, cuda:N, opencl or opencl:P:D."""
    parts = str(s).strip().split(":")
    ok = (parts[0] == "cpu" and len(parts) == 1) or \
         (parts[0] == "cuda" and len(parts) <= 2) or \
         (parts[0] == "opencl" and len(parts) in (1, 3))
    if ok and all(p.isdigit() for p in parts[1:]):
        return ":".join(parts)
    raise ValueError(f"device must be cpu, cuda, cuda:N, opencl or opencl:P:D (OpenCL platform "
                     f"and device indices), got {s!r}")


def allowed_cpus() -> frozenset:
    """The CPUs this process may run on (off Linux: all of them)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):      # not Linux
        return frozenset(range(os.cpu_count() or 1))


def _default_threads() -> int:
    return len(allowed_cpus())


def _threads(s) -> int:
    n = int(s)
    if n < 1:
        raise ValueError(f"vmc.config.threads must be a positive number of threads, got {s!r} "
                         f"(the default is the CPUs this process may run on: "
                         f"{_default_threads()})")
    return n


def _nonnegative_int(s):
    v = int(s)
    if v < 0:
        raise ValueError(f"expected an integer >= 0, got {s!r}")
    return v


def _optimizer(s):
    return None if s in (None, "None", "none", "") else s


OPTIONS = {
    "floatX": Option("float64", "dtype of float constructors and constants",
                     allowed=("float64", "float32")),
    "device": Option("cpu", "where shared variables live and ops run: cpu, cuda, cuda:N, "
                     "opencl or opencl:P:D (platform, device)", parse_device),
    "optimizer": Option("fast_run", "rewrite pipeline: fast_run, fast_compile or None",
                        _optimizer, ("fast_run", "fast_compile", None)),
    "linker": Option("cvm", "VM that runs the program: cvm (Cython) or py (reference)",
                     allowed=("cvm", "py")),
    "allow_gc": Option(True, "release intermediates after their last use", _bool),
    "compiledir": Option(os.environ.get("VMC_COMPILEDIR")
                         or os.path.join(os.path.expanduser("~"), ".cache", "vmc"),
                         "where generated C is compiled and cached ($VMC_COMPILEDIR)"),
    "compiledir_max_mb": Option(1024, "most MB the compile cache keeps in compiledir; the "
                                "least recently used entries are removed past it", float),
    "block_cache_mb": Option(1024, "most MB of freed large kernel outputs kept for reuse "
                             "(vmc/thunks/cgen/vmc_blocks.h); 0 turns the cache off", float),
    "tiered_compile": Option(True, "long fused kernels run a fast-built form first while "
                             "their optimized form compiles in the background "
                             "(vmc/thunks/cgen/tiers.py); off: build the optimized one at "
                             "once", _bool),
    "graph_cache": Option(True, "reuse the optimized graph of a graph optimized before, in "
                          "this process or (in compiledir) an earlier one", _bool),
    "threads": Option(_default_threads(), "threads that split large elementwise kernels and "
                      "reductions, and BLAS threads (through threadpoolctl); default: the CPUs "
                      "this process may run on", _threads),
    "profile": Option(False, "profile every compiled function", _bool),
    "profile_at_exit": Option(False, "print the profiles of all profiled functions at exit "
                              "(profile=True does too)", _bool),
    "profile_trace_calls": Option(100, "profiled functions keep the timeline of their last "
                                  "this many calls (f.profile.to_chrome_trace); 0: none",
                                  _nonnegative_int),
    "print_rewrites": Option(False, "print the graph after each rewrite pass", _bool),
    "check_graph": Option(False, "validate the graph between rewrite passes", _bool),
    "on_rewrite_error": Option("raise", "what a failing rewrite does",
                               allowed=("raise", "warn")),
    "gpu_tf32": Option(False, "allow TF32 tensor-core math in float32 GPU matmuls", _bool),
    "gpu_graphs": Option(False, "capture GPU calls into CUDA graphs", _bool),
    "compute_test_value": Option("off", "compute each new node's test value from its inputs' "
                                 "(x.tag.test_value) where the user builds it; a missing test "
                                 "value is skipped (ignore), warned about (warn) or an error "
                                 "(raise)", allowed=("off", "ignore", "warn", "raise")),
    # Theano's names that programs read or set.
    "mode": Option("Mode", "Theano's default mode: Mode (config.optimizer decides), "
                   "FAST_RUN, FAST_COMPILE, DebugMode (DEBUG_MODE) or NanGuardMode",
                   allowed=("Mode", "FAST_RUN", "FAST_COMPILE", "DebugMode", "DEBUG_MODE",
                            "NanGuardMode")),
    "on_unused_input": Option("raise", "what vmc.function does with an input the outputs do "
                              "not use", allowed=("raise", "warn", "ignore")),
    "exception_verbosity": Option("low", "Theano's; vmc's errors always give the op, shapes "
                                  "and user line", allowed=("low", "high")),
}

# Theano's config.warn.* flags each silenced the warning about one bug of an old
# Theano release. vmc never had those bugs; the flags exist so that programs
# that set them (theano.config.warn.subtensor_merge_bug = False) run.
_WARN_FLAGS = ("argmax_pushdown_bug", "gpusum_01_011_0111_bug", "sum_sum_bug",
               "sum_div_dimshuffle_bug", "subtensor_merge_bug", "gpu_set_subtensor1",
               "vm_gc_bug", "signal_conv2d_interface", "reduce_join", "inc_set_subtensor1",
               "round", "inc_subtensor1_opt", "identify1pexp_bug")
OPTIONS.update({f"warn.{n}": Option(False, "Theano's warning flag; no effect in vmc", _bool)
                for n in _WARN_FLAGS})
OPTIONS["warn.ignore_bug_before"] = Option("0.9", "Theano's warning flag; no effect in vmc")


class Config:
    def __init__(self, flags: str = ""):
        object.__setattr__(self, "_values", {k: o.default for k, o in OPTIONS.items()})
        object.__setattr__(self, "_given", set())   # options the user set
        for item in filter(None, (s.strip() for s in flags.split(","))):
            if "=" not in item:
                raise ValueError(f"VMC_FLAGS entry {item!r} is not of the form name=value")
            name, value = item.split("=", 1)
            setattr(self, name.strip(), value.strip())

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            if name in _SECTIONS:
                return _Section(self, name)
            raise AttributeError(f"vmc.config has no option {name!r}; "
                                 f"options: {', '.join(sorted(OPTIONS))}") from None

    def __setattr__(self, name, value):
        if name not in OPTIONS:
            raise AttributeError(f"vmc.config has no option {name!r}; "
                                 f"options: {', '.join(sorted(OPTIONS))}")
        opt = OPTIONS[name]
        if isinstance(value, str) or opt.parse in _CHECKED:
            value = opt.parse(value)
        if opt.allowed is not None and value not in opt.allowed:
            raise ValueError(f"vmc.config.{name} must be one of {opt.allowed}, got {value!r}")
        self._given.add(name)
        self._set(name, value)

    def given(self, name) -> bool:
        """Whether option ``name`` was set (VMC_FLAGS, assignment or ``change``),
        rather than left at its default: a default that depends on the
        situation (``threads`` under MPI) may then be chosen for the user."""
        return name in self._given

    def _set(self, name, value):
        self._values[name] = value
        for fn in _watchers.get(name, ()):
            fn(value)

    def watch(self, name, fn):
        """Call ``fn(value)`` now and whenever option ``name`` is set (the runtime
        follows ``threads`` this way)."""
        getattr(self, name)
        _watchers.setdefault(name, []).append(fn)
        fn(self._values[name])

    @contextlib.contextmanager
    def change(self, **values):
        old = {k: getattr(self, k) for k in values}
        try:
            for k, v in values.items():
                setattr(self, k, v)
            yield self
        finally:
            for k, v in old.items():
                self._set(k, v)

    def items(self):
        """``(name, value)`` of every option, sorted by name."""
        return sorted(self._values.items())

    def __repr__(self):
        return "vmc.config(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"


class _Section:
    """A group of dotted options: ``config.warn.round`` is option ``warn.round``."""
    __slots__ = ("_config", "_prefix")

    def __init__(self, cfg, prefix):
        object.__setattr__(self, "_config", cfg)
        object.__setattr__(self, "_prefix", prefix + ".")

    def __getattr__(self, name):
        return getattr(self._config, self._prefix + name)

    def __setattr__(self, name, value):
        setattr(self._config, self._prefix + name, value)


_SECTIONS = {name.split(".", 1)[0] for name in OPTIONS if "." in name}

_CHECKED = (_threads,)     # parsers that also check values given as numbers
_watchers: dict = {}
config = Config(os.environ.get("VMC_FLAGS", ""))
