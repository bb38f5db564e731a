"""DebugMode: the optimized function, checked thunk by thunk (Theano's ``DebugMode``)::

    f = vmc.function([x], y, mode="DebugMode")        # or mode=DebugMode(...)

Compiling validates the graph after every rewrite pass (``vmc.opt.check``:
bookkeeping, and each node's output types against what its op makes of its
inputs now). Running calls, for each thunk of the program (generated C, BLAS,
numpy, a user op's ``perform``):

1. its **reference**, the op's Python thunk (``vmc.thunks.registry.py_thunk``
   with nothing destroyable: numpy, or ``perform``), on the same inputs; the
   reference must leave them as they were;
2. the thunk itself; then checks, in this order, that
   - each output is a valid value of its variable's type (dtype, rank,
     static sizes) and, with ``check_isfinite``, holds no NaN or infinity
     where the inputs held none (``InvalidValueError``);
   - no input the scheduler did not let it overwrite changed
     (``BadDestroyMap``);
   - no output shares memory with an input unless the op declares it
     (``view_map``/``destroy_map``) or writes in place into an input it may
     overwrite, and a declared view aliases its input where the reference's
     does (``BadViewMap``);
   - the outputs equal the reference's, to a tolerance that fits the dtype
     (``BadThunkOutput``);
3. with ``check_strides``, the thunk again on copies of its inputs laid out
   non-contiguously, in Fortran order and with negative strides: the outputs
   must not change (``BadThunkOutput``).

The thunk of an op marked ``nondeterministic`` (its effects go beyond its
outputs, as an MPI collective's start and wait) runs once: steps 1 and 3 are
skipped for it.

The first failure raises; the function's error handler adds the op, its input
shapes and the line of user code that built the node. DebugMode is slow (each
thunk runs about five times, and inputs are copied): it is for finding bugs.
"""
from __future__ import annotations

import copy

import numpy as np

from vmc.opt.pipeline import register_mode
from vmc.program import CThunk
from vmc.thunks.registry import py_thunk

from .instrument import (InstrumentedMode, as_result, check_options,
                         keep_thunk_attributes, run_thunk)


class DebugModeError(AssertionError):
    """A check of DebugMode failed (the message says which)."""


class BadThunkOutput(DebugModeError):
    """A thunk's outputs differ from its reference's, or with other strides."""


class BadDestroyMap(DebugModeError):
    """A thunk changed an input it was not allowed to overwrite."""


class BadViewMap(DebugModeError):
    """An output aliases an input without a declaration, or a declared view does not."""


class InvalidValueError(DebugModeError):
    """An output is not a valid value of its type (or not finite)."""


# (atol, rtol) per dtype, Theano's; exact for everything else
TOLERANCES = {"float16": (5e-3, 1e-2), "float32": (1e-5, 1e-5), "float64": (1e-8, 1e-5),
              "complex64": (1e-5, 1e-5), "complex128": (1e-8, 1e-5)}
LAYOUTS = ("non-contiguous", "Fortran order", "negative strides")


def _is_bool(v):
    return isinstance(v, bool)


class DebugMode(InstrumentedMode):
    """Check each thunk against its reference (see the module docstring).

    ``check_isfinite``: an output with NaN or infinities where the inputs had
    none is an error (Theano's default, True). ``check_strides``: rerun each
    thunk on inputs with other strides (True). ``optimizer``, ``linker``,
    ``include``, ``exclude`` as for ``vmc.Mode``."""
    check_graph = True

    def __init__(self, optimizer="fast_run", linker=None, include=(), exclude=(),
                 check_isfinite=True, check_strides=True):
        check_options("DebugMode", locals(), {
            "check_isfinite": (_is_bool, "a bool"), "check_strides": (_is_bool, "a bool")})
        super().__init__(optimizer, linker, include, exclude)
        self.check_isfinite = check_isfinite
        self.check_strides = check_strides

    def wrap_thunk(self, pc, node, thunk, destroyable):
        return keep_thunk_attributes(CheckedThunk(self, pc, node, thunk, destroyable), thunk)

    def __repr__(self):
        return (f"DebugMode({self.optimizer!r}, linker={self.linker!r}, "
                f"check_isfinite={self.check_isfinite}, check_strides={self.check_strides})")


class CheckedThunk:
    """A thunk and its checks; called by the VM as a Python thunk."""

    def __init__(self, mode, pc, node, thunk, destroyable):
        self.mode, self.pc, self.node, self.thunk = mode, pc, node, thunk
        self.destroyable = frozenset(destroyable)
        self.n_out = len(node.outputs)
        self.kind = "C thunk" if isinstance(thunk, CThunk) else "thunk"
        # An op with effects beyond its outputs (an MPI collective's start or
        # wait: every rank must run it once) runs once, without the checks
        # that rerun it.
        self.rerun = not getattr(node.op, "nondeterministic", False)
        self._reference = None

    @property
    def reference(self):
        """The op's Python thunk with nothing destroyable, or None when it has none."""
        if self._reference is None:
            try:
                self._reference = py_thunk(self.node, frozenset())
            except NotImplementedError:
                self._reference = False
        return self._reference or None

    def __call__(self, *args):
        before = [_copy(a) for a in args]
        ref_outs, ref_views = None, None
        if self.rerun and self.reference is not None:
            ref_outs = run_thunk(self.reference, args, self.n_out)
            self._check_kept(args, before, frozenset(), "its reference (the Python thunk)")
            ref_views = [[_shares(o, a) for a in args] for o in ref_outs]
            ref_outs = [_copy(o) for o in ref_outs]
        outs = run_thunk(self.thunk, args, self.n_out)
        self._check_values(outs, before)
        self._check_kept(args, before, self.destroyable, f"the {self.kind}")
        self._check_views(outs, args, ref_views)
        if ref_outs is not None:
            self._compare(outs, ref_outs, "its reference (the Python thunk)", args=args)
        if self.mode.check_strides and self.rerun:
            self._check_strides(outs, before)
        return as_result(outs)

    # -- the checks ----------------------------------------------------------------
    def _fail(self, cls, check, text):
        raise cls(f"DebugMode: {check} failed for {self.node.op} (instruction {self.pc}, "
                  f"{self.kind} {type(self.thunk).__name__}): {text}")

    def _check_values(self, outs, before):
        finite_in = all(_finite(a) for a in before)
        for k, (v, var) in enumerate(zip(outs, self.node.outputs)):
            problem = _type_problem(v, var.type)
            if problem:
                self._fail(InvalidValueError, "the output type check",
                           f"output {k} should be {var.type}, got {problem}")
            if self.mode.check_isfinite and finite_in and not _finite(v):
                self._fail(InvalidValueError, "the finiteness check (check_isfinite)",
                           f"output {k} holds NaN or infinities, its inputs none:\n"
                           f"  {_show(v)}")

    def _check_kept(self, args, before, allowed, who):
        for i, (a, b) in enumerate(zip(args, before)):
            if i not in allowed and not _same(a, b):
                self._fail(BadDestroyMap, "the destroyed-inputs check",
                           f"{who} changed input {i}, which it was not allowed to "
                           f"overwrite (no destroy_map entry, or the value is read later):"
                           f"\n  before: {_show(b)}\n  after:  {_show(a)}")

    def _check_views(self, outs, args, ref_views):
        op = self.node.op
        declared = {}
        for m in (getattr(op, "view_map", None), getattr(op, "destroy_map", None)):
            for k, ins in (m or {}).items():
                declared.setdefault(k, set()).update(ins)
        for k, o in enumerate(outs):
            ok = declared.get(k, set()) | self.destroyable
            for i, a in enumerate(args):
                shares = _shares(o, a)
                if shares and i not in ok:
                    self._fail(BadViewMap, "the aliasing check",
                               f"output {k} shares memory with input {i}, but the op "
                               f"declares no view_map or destroy_map entry for it")
                if (ref_views is not None and ref_views[k][i] and i in declared.get(k, ())
                        and not shares and not any(_shares(o, args[j]) for j in declared[k])):
                    self._fail(BadViewMap, "the declared-view check",
                               f"output {k} is declared a view of input {i} (view_map) "
                               f"and the reference returns a view, but the {self.kind} "
                               f"returned a copy")

    def _compare(self, outs, expected, what, layout=None, args=()):
        terms = _terms(args, outs)
        for k, (got, want, var) in enumerate(zip(outs, expected, self.node.outputs)):
            diff = _difference(got, want, getattr(var.type, "dtype", None), terms)
            if diff:
                check = (f"the strides check ({layout} inputs)" if layout
                         else "the comparison with the reference")
                self._fail(BadThunkOutput, check,
                           f"output {k} differs from {what}: {diff}")

    def _check_strides(self, outs, before):
        for layout in LAYOUTS:
            args = [_laid_out(a, layout) for a in before]
            if all(a is b for a, b in zip(args, before)):
                continue        # no input can take this layout
            got = run_thunk(self.thunk, args, self.n_out)
            self._compare(got, outs, f"its outputs on the same inputs laid out "
                                     f"contiguously", layout, args)


# -- values ------------------------------------------------------------------------
def _copy(v):
    """A copy of an array or a random generator; other values (scalars, MPI
    tickets, ...) as they are."""
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, np.random.Generator):
        return copy.deepcopy(v)
    return v


def _same(a, b):
    """Whether ``a`` still equals its copy ``b`` (same bits for arrays)."""
    if isinstance(a, np.ndarray):
        if not isinstance(b, np.ndarray) or a.shape != b.shape or a.dtype != b.dtype:
            return False
        return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, np.random.Generator):
        return a.bit_generator.state == b.bit_generator.state
    try:
        return bool(a == b)
    except Exception:        # noqa: BLE001 - not comparable: assume kept
        return True


def _shares(a, b):
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or not a.size:
        return False
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=10 ** 6))
    except np.exceptions.TooHardError:
        return True


def _finite(v):
    if not isinstance(v, np.ndarray) or v.dtype.kind not in "fc":
        return True
    return bool(np.isfinite(v).all())


def _type_problem(v, t):
    """Why ``v`` is not a value of tensor type ``t`` (a string), or None."""
    dtype = getattr(t, "dtype", None)
    if dtype is None or not hasattr(t, "shape"):
        return None
    if not isinstance(v, (np.ndarray, np.generic)):     # numpy thunks make 0-d scalars
        return f"a {type(v).__name__}"
    if str(v.dtype) != dtype:
        return f"dtype {v.dtype}"
    if v.ndim != len(t.shape) or any(s is not None and s != d
                                     for s, d in zip(t.shape, v.shape)):
        return f"shape {v.shape}"
    return None


def _terms(args, outs):
    """About how many terms each output element may have accumulated: the largest
    input over the largest output (1 for elementwise ops; a reduction's length;
    a dot's inner size where the output is not larger than its inputs). Another
    summation order (another layout, another implementation) moves a sum of m
    terms by about sqrt(m) roundings, so the tolerance grows with it."""
    size = lambda vs: max((v.size for v in vs if isinstance(v, (np.ndarray, np.generic))),
                          default=1)
    return max(1, size(args) // max(1, size(outs)))


def _difference(got, want, dtype, terms=1):
    """A description of how ``got`` differs from ``want``, or None. Floats agree
    to the dtype's tolerance, widened by sqrt(``terms``) (see ``_terms``)."""
    if isinstance(want, np.random.Generator) or isinstance(got, np.random.Generator):
        return None if _same(got, want) else "the generators' states differ"
    arrays = (np.ndarray, np.generic)       # numpy scalars compare as 0-d arrays
    if not isinstance(got, arrays) and not isinstance(want, arrays):
        return None if _same(got, want) else f"{got!r} vs {want!r}"
    g, w = np.asarray(got), np.asarray(want)
    if g.shape != w.shape:
        return f"shape {g.shape} vs {w.shape}:\n  got:      {_show(g)}\n  expected: {_show(w)}"
    if g.dtype.kind in "fc" or w.dtype.kind in "fc":
        atol, rtol = (t * np.sqrt(terms) for t in
                      TOLERANCES.get(dtype or str(g.dtype), (1e-8, 1e-5)))
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        if ok.all():
            return None
        err = np.where(ok, 0, np.abs(g.astype(complex if g.dtype.kind == "c" else float)
                                     - w.astype(complex if w.dtype.kind == "c" else float)))
        err = np.where(np.isnan(err), np.inf, err)
        where = np.unravel_index(int(np.argmax(err)), g.shape) if g.ndim else ()
        return (f"largest difference {err[where]:.6g} at index {tuple(map(int, where))}: "
                f"{g[where]!r} vs {w[where]!r} (atol {atol}, rtol {rtol})\n"
                f"  got:      {_show(g)}\n  expected: {_show(w)}")
    if g.dtype == w.dtype and np.array_equal(g, w):
        return None
    return f"{_show(g)} vs {_show(w)}"


def _laid_out(a, layout):
    """A copy of array ``a`` with the same values in ``layout``, or ``a`` itself
    when that layout does not apply (0-d, one element, Fortran order of 1-d)."""
    if not isinstance(a, np.ndarray) or a.ndim == 0 or a.size < 2:
        return a
    if layout == "non-contiguous":
        wide = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        view = wide[..., ::2]
        view[...] = a
        return view
    if layout == "Fortran order":
        return np.asfortranarray(a) if a.ndim >= 2 else a
    flipped = np.flip(a).copy()
    return np.flip(flipped)          # negative strides on every axis


def _show(v):
    if isinstance(v, np.ndarray):
        text = np.array2string(v, threshold=20, edgeitems=3, precision=8)
        return f"{v.dtype}{list(v.shape)} {' '.join(text.split())}"
    return repr(v)


register_mode("DebugMode", DebugMode)
register_mode("DEBUG_MODE", DebugMode)
