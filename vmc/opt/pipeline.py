"""Modes as lists of named passes, and ``optimize``, which runs them.

Read top to bottom, fast_run is::

    inline -> canonicalize -> stabilize -> specialize -> fusion -> final_merge -> dead_code

Each rewriting pass is the equilibrium driver over some rewrite sets; merging
(common subexpressions, constants by value) rides along in each, so ``merge``
on its own is the driver with no rewrites. ``fusion`` and ``dead_code`` are
plain functions of the graph.

``config.print_rewrites`` prints, after each pass, which rewrites fired and
the graph; ``config.check_graph`` validates the graph after each pass; the
time of each pass goes into ``timings`` (the function's profile).
"""
from __future__ import annotations

import copy
import sys
import time

from vmc.config import config

from .driver import Equilibrium
from .rewriting import REGISTRY

# Importing the rewrite modules registers their rewrites.
from . import basic, canonicalize, stabilize, specialize, blas, fusion  # noqa: F401,E401
from .basic import dead_code_pass, inline_pass
from .check import check_fgraph

# pass name -> (rewrite sets run on every node, sets run only on what changed),
# or a function of (fgraph, mode)
PASSES = {
    "inline": inline_pass,
    "merge": ((), ()),
    "constant_folding": (("constant_folding",), ()),
    "canonicalize": (("constant_folding", "canonicalize"), ()),
    "stabilize": (("stabilize",), ("constant_folding", "canonicalize")),
    "specialize": (("specialize",), ("constant_folding",)),
    "fusion": fusion.fusion_pass,
    "final_merge": ((), ()),
    "dead_code": dead_code_pass,
}
ORDER = list(PASSES)

MODES = {
    "fast_run": ["inline", "canonicalize", "stabilize", "specialize", "fusion", "final_merge",
                 "dead_code"],
    # constant folding runs in the driver, which merges as it goes: one walk
    "fast_compile": ["inline", "constant_folding", "dead_code"],
    None: [],
}


class Mode:
    """A rewrite pipeline: a base mode plus names to include or exclude.

    ``Mode("fast_run").excluding("fusion")`` drops the fusion pass;
    ``.excluding("log1p")`` drops one rewrite, ``.excluding("stability")``
    every rewrite with that tag (``.excluding("merge")`` stops merging); ``.including(...)`` adds a pass that the base
    mode lacks, or enables rewrites that are off by default. ``linker``
    ("cvm" or "py") is None to follow ``config.linker``. ``check_graph``
    validates the graph after every pass (as ``config.check_graph`` does).

    Subclasses in ``vmc.compile`` (DebugMode, NanGuardMode, MonitorMode) also
    instrument the thunks; ``including``/``excluding`` keep their class and
    options.
    """
    check_graph = False

    def __init__(self, optimizer="fast_run", linker=None, include=(), exclude=()):
        self.optimizer = _mode_name(optimizer)
        if linker not in (None, "cvm", "py"):
            raise ValueError(f"Mode: linker must be 'cvm', 'py' or None, got {linker!r}")
        self.linker = linker
        self._set_names(include, exclude)

    def _set_names(self, include, exclude):
        for what, names in (("include", include), ("exclude", exclude)):
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise TypeError(f"Mode: {what} must be a sequence of names, got {names!r}")
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        known = REGISTRY.names_and_tags() | set(PASSES)
        for n in self.include + self.exclude:
            if n not in known:
                raise ValueError(f"Mode: no pass, rewrite or tag is named {n!r}")

    def including(self, *names):
        return self._with(self.include + names, self.exclude)

    def excluding(self, *names):
        return self._with(self.include, self.exclude + names)

    def _with(self, include, exclude):
        new = copy.copy(self)
        new._set_names(include, exclude)
        return new

    @property
    def passes(self):
        names = set(MODES[self.optimizer]) | (set(self.include) & set(PASSES))
        return [p for p in ORDER if p in names and p not in self.exclude]

    def __repr__(self):
        return (f"{type(self).__name__}({self.optimizer!r}, linker={self.linker!r}, "
                f"include={self.include}, exclude={self.exclude})")


# Modes known by name besides the pipelines of MODES, as Theano's
# ``predefined_modes``: lower-cased name -> a function making the mode.
# ``vmc.compile`` registers DebugMode, NanGuardMode and MonitorMode.
NAMED_MODES = {}


def register_mode(name, factory):
    """``get_mode(name)`` (any case) returns ``factory()`` from now on."""
    key = name.lower()
    if key in MODES or key in ("none", ""):
        raise ValueError(f"register_mode: {name!r} names a rewrite pipeline")
    NAMED_MODES[key] = factory


def _mode_name(name):
    if isinstance(name, str) and name.lower() in ("none", ""):
        return None
    if isinstance(name, str):
        name = name.lower()
    if name not in MODES:
        raise ValueError(f"unknown mode {name!r}; modes: fast_run, fast_compile, None, "
                         f"{', '.join(sorted(NAMED_MODES))} or a vmc.Mode")
    return name


def get_mode(mode=None):
    """A Mode for ``mode``: None (``config.mode``, else ``config.optimizer``), a name ("fast_run",
    "fast_compile", "None", "DebugMode", ...), or a Mode (or an object with the same
    ``optimizer``, ``include`` and ``exclude`` attributes)."""
    if isinstance(mode, Mode):
        return mode
    if mode is None:
        # Theano's config.mode, when set, names the default mode
        mode = config.optimizer if config.mode == "Mode" else config.mode
        if mode is None:
            return Mode(None)
    if isinstance(mode, str):
        factory = NAMED_MODES.get(mode.lower())
        return factory() if factory is not None else Mode(mode)
    if all(hasattr(mode, a) for a in ("optimizer", "include", "exclude")):
        return Mode(mode.optimizer, getattr(mode, "linker", None), mode.include, mode.exclude)
    raise TypeError(f"mode must be a name or a vmc.Mode, got {type(mode).__name__}")


def optimize(fgraph, mode=None, timings=None, evaluate=None, rewrite_log=None):
    """Run ``mode``'s passes on ``fgraph`` in place; return it.

    ``evaluate(node, input values) -> output values`` computes a node whose
    inputs are all constants (constant folding); ``vmc.compile`` passes the
    CPU thunks' evaluator. Without one, nothing is folded. ``rewrite_log``
    (a list) gets every replacement the rewriting passes make (see
    ``Equilibrium``)."""
    mode = get_mode(mode)
    fgraph.evaluate = evaluate
    merge = "merge" not in mode.exclude
    for name in mode.passes:
        t0 = time.perf_counter()
        step = PASSES[name]
        if callable(step):
            fired = step(fgraph, mode)
            fired = fired if isinstance(fired, dict) else {}
        else:
            every, changed = step
            selection = REGISTRY.select(every, mode.include, mode.exclude)
            followup = REGISTRY.select(changed, mode.include, mode.exclude) if changed else None
            fired = Equilibrium(selection, merge=merge, followup=followup,
                                log=rewrite_log)(fgraph)
        if timings is not None:
            timings[f"rewrite:{name}"] = time.perf_counter() - t0
        if config.print_rewrites:
            _print_pass(name, fired, fgraph)
        if config.check_graph or mode.check_graph:
            check_fgraph(fgraph, after=name)
    return fgraph


def _print_pass(name, fired, fgraph):
    what = ", ".join(f"{k} x{v}" for k, v in sorted(fired.items())) or "nothing fired"
    print(f"== vmc.opt pass {name}: {what}", file=sys.stdout)
    print(fgraph, file=sys.stdout)
