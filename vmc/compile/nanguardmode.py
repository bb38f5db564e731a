"""NanGuardMode: every thunk's outputs are checked for NaN, infinities and big
values (|v| > 1e10) as soon as it runs (Theano's ``NanGuardMode``)::

    f = vmc.function([x], y, mode=NanGuardMode(nan_is_error=True, inf_is_error=True,
                                               big_is_error=False))

A C thunk (generated kernels, BLAS, ...) is wrapped in a C thunk that runs it
and scans its outputs in C (``vmc.thunks._guard``): one pass over each output,
no Python. A Python thunk's outputs go through the same C scan. The first bad
value raises ``NanGuardError`` (an AssertionError) naming the output and its
index; the function's error handler adds the op, the input shapes and the
line of user code that built the node. Float and complex outputs are checked;
integers cannot hold NaN or infinities and are not checked for size.
"""
from __future__ import annotations

import numpy as np

from vmc.opt.pipeline import register_mode
from vmc.program import CThunk

from .instrument import (InstrumentedMode, as_result, check_options, keep_thunk_attributes,
                         run_thunk)

try:
    from vmc.thunks._guard import BIG, INF, NAN, NanGuardError, first_bad, guard_cthunk
except ImportError:           # not built: the same check with numpy
    NAN, INF, BIG, guard_cthunk = 1, 2, 4, None

    class NanGuardError(AssertionError):
        """A thunk wrote a NaN, an infinity or a big value."""

    def first_bad(a, flags):
        if not isinstance(a, np.ndarray) or a.dtype.char not in "fdFD" or not a.size:
            return None
        codes = None
        for part in ((a.real, a.imag) if a.dtype.kind == "c" else (a,)):
            with np.errstate(invalid="ignore"):
                c = np.where(np.isnan(part), flags & NAN,
                             np.where(np.isinf(part), INF if flags & INF else flags & BIG,
                                      np.where(np.abs(part) > 1e10, flags & BIG, 0)))
            codes = c if codes is None else np.where(codes != 0, codes, c)
        hits = np.flatnonzero(codes)
        if not hits.size:
            return None
        what = {NAN: "NaN", INF: "inf", BIG: "big"}[int(codes.reshape(-1)[hits[0]])]
        return what, tuple(int(i) for i in np.unravel_index(hits[0], a.shape))


def _is_flag(v):
    return v is None or isinstance(v, bool)


class NanGuardMode(InstrumentedMode):
    """Check every thunk's outputs: ``nan_is_error``, ``inf_is_error``,
    ``big_is_error`` (|v| > 1e10) say which values raise (None means True, as
    in Theano). ``optimizer``, ``linker``, ``include``, ``exclude`` as for
    ``vmc.Mode``."""

    def __init__(self, nan_is_error=True, inf_is_error=True, big_is_error=True,
                 optimizer="fast_run", linker=None, include=(), exclude=()):
        check_options("NanGuardMode", locals(), {
            "nan_is_error": (_is_flag, "a bool"), "inf_is_error": (_is_flag, "a bool"),
            "big_is_error": (_is_flag, "a bool")})
        super().__init__(optimizer, linker, include, exclude)
        self.nan_is_error = nan_is_error is not False
        self.inf_is_error = inf_is_error is not False
        self.big_is_error = big_is_error is not False
        self.flags = ((NAN if self.nan_is_error else 0) | (INF if self.inf_is_error else 0)
                      | (BIG if self.big_is_error else 0))

    def wrap_thunk(self, pc, node, thunk, destroyable):
        if not self.flags:
            return thunk
        n_out = len(node.outputs)
        if isinstance(thunk, CThunk) and guard_cthunk is not None:
            return guard_cthunk(thunk, n_out, self.flags)
        return keep_thunk_attributes(_GuardedThunk(thunk, n_out, self.flags), thunk)

    def __repr__(self):
        return (f"NanGuardMode(nan_is_error={self.nan_is_error}, "
                f"inf_is_error={self.inf_is_error}, big_is_error={self.big_is_error}, "
                f"optimizer={self.optimizer!r})")


class _GuardedThunk:
    """A thunk followed by the check of its outputs, in Python."""

    def __init__(self, thunk, n_out, flags):
        self.thunk, self.n_out, self.flags = thunk, n_out, flags

    def __call__(self, *args):
        outs = run_thunk(self.thunk, args, self.n_out)     # a C thunk when _guard is not built
        for k, v in enumerate(outs):
            bad = first_bad(v, self.flags)
            if bad is not None:
                raise NanGuardError(f"NanGuardMode: {bad[0]} in output {k} at index "
                                    f"{bad[1]} (shape {v.shape}, {v.dtype})")
        return as_result(outs)


register_mode("NanGuardMode", NanGuardMode)
