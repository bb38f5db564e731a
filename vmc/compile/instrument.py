"""Modes that instrument thunks: the base of DebugMode, NanGuardMode and MonitorMode.

Such a mode is a ``vmc.Mode`` (a rewrite pipeline) that also replaces each
thunk of the scheduled program by one that runs it and checks or reports
around it: ``schedule`` (``vmc.compile.function``) calls
``mode.instrument(code, thunk_index, thunks, destroy)`` after choosing the
thunks. The program, the VM and the call path stay the same, so concurrent
calls, update locks and error messages (``vmc.compile.errors``) work as in
any mode.

``run_thunk(thunk, args, n_out)`` runs one thunk of either kind on its own
and returns the tuple of its outputs: C thunks through
``vmc._vm.call_thunk``, on registers of their own.
"""
from __future__ import annotations

from vmc.opt.pipeline import Mode

try:
    from vmc._vm import call_thunk as _call_c
except ImportError:          # not built: every thunk is a Python callable
    _call_c = None


class InstrumentedMode(Mode):
    """A Mode whose ``wrap_thunk(pc, node, thunk, destroyable)`` returns the
    thunk instruction ``pc`` (of ``node``) runs instead of ``thunk``;
    ``destroyable`` are the input positions the scheduler let it overwrite."""

    def wrap_thunk(self, pc, node, thunk, destroyable):
        return thunk

    def instrument(self, code, thunk_index, thunks, destroy):
        """``thunks`` with each replaced by ``wrap_thunk``'s (a new list)."""
        thunks = list(thunks)
        for pc, k in thunk_index.items():
            thunks[k] = self.wrap_thunk(pc, code[pc].node, thunks[k],
                                        destroy.get(pc, frozenset()))
        return thunks


def run_thunk(thunk, args, n_out):
    """The outputs of ``thunk`` on ``args``, as a tuple of ``n_out`` values."""
    if _call_c is not None:
        return _call_c(thunk, args, n_out)
    result = thunk(*args)
    return (result,) if n_out == 1 else tuple(result)


def as_result(outputs):
    """What a Python thunk returns for ``outputs`` (a tuple): the value, or the
    tuple when there are several."""
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def keep_thunk_attributes(wrapper, thunk):
    """Let ``wrapper`` answer what the profiler and scan ask of ``thunk``: its
    inner function (a scan body) and ``set_profiling``."""
    for name in ("inner", "set_profiling"):
        value = getattr(thunk, name, None)
        if value is not None:
            setattr(wrapper, name, value)
    return wrapper


def check_options(mode_name, values, checks):
    """Raise TypeError naming an option of ``mode_name`` whose value fails its
    check; ``checks`` maps option -> (test, what was expected)."""
    for name, (test, expected) in checks.items():
        if not test(values[name]):
            raise TypeError(f"{mode_name}: {name} must be {expected}, got {values[name]!r}")
