"""MonitorMode: the user's functions run before and after each thunk (Theano's
``MonitorMode``)::

    def detect_nan(i, node, fn):
        for out in fn.outputs:
            if np.isnan(out[0]).any():
                print("NaN from", node, "inputs", [v[0] for v in fn.inputs])
    f = vmc.function([x], y, mode=MonitorMode(post_func=detect_nan))

Both functions get Theano's arguments: the instruction index ``i`` (the
thunk's position in the program), the ``node`` (an Apply of the optimized
graph) and ``fn``, the thunk, whose ``inputs`` and ``outputs`` are lists of
one-element lists holding the values (outputs are ``[None]`` before it runs),
and whose ``thunk`` is the thunk itself. Each call of a thunk gets a ``fn`` of
its own, so concurrent calls do not see each other's values.
"""
from __future__ import annotations

from vmc.opt.pipeline import register_mode

from .instrument import (InstrumentedMode, as_result, check_options,
                         keep_thunk_attributes, run_thunk)


def _callable_or_none(f):
    return f is None or callable(f)


class MonitorMode(InstrumentedMode):
    """Call ``pre_func(i, node, fn)`` before and ``post_func(i, node, fn)``
    after each thunk. ``optimizer``, ``linker``, ``include``, ``exclude`` as
    for ``vmc.Mode``."""

    def __init__(self, pre_func=None, post_func=None, optimizer="fast_run", linker=None,
                 include=(), exclude=()):
        check_options("MonitorMode", locals(), {
            "pre_func": (_callable_or_none, "a function (i, node, fn) or None"),
            "post_func": (_callable_or_none, "a function (i, node, fn) or None")})
        super().__init__(optimizer, linker, include, exclude)
        self.pre_func = pre_func
        self.post_func = post_func

    def wrap_thunk(self, pc, node, thunk, destroyable):
        if self.pre_func is None and self.post_func is None:
            return thunk
        return keep_thunk_attributes(_MonitoredThunk(self, pc, node, thunk), thunk)

    def __repr__(self):
        return (f"MonitorMode(pre_func={self.pre_func!r}, post_func={self.post_func!r}, "
                f"optimizer={self.optimizer!r})")


class ThunkCall:
    """The ``fn`` the monitor functions get: one call of a thunk."""
    __slots__ = ("thunk", "inputs", "outputs")

    def __init__(self, thunk, inputs, n_out):
        self.thunk = thunk
        self.inputs = [[v] for v in inputs]
        self.outputs = [[None] for _ in range(n_out)]

    def __repr__(self):
        return f"<thunk call of {self.thunk!r}>"


class _MonitoredThunk:
    def __init__(self, mode, pc, node, thunk):
        self.mode, self.pc, self.node, self.thunk = mode, pc, node, thunk
        self.n_out = len(node.outputs)

    def __call__(self, *args):
        call = ThunkCall(self.thunk, args, self.n_out)
        pre, post = self.mode.pre_func, self.mode.post_func
        if pre is not None:
            pre(self.pc, self.node, call)
        outs = run_thunk(self.thunk, args, self.n_out)
        if post is not None:
            for cell, v in zip(call.outputs, outs):
                cell[0] = v
            post(self.pc, self.node, call)
        return as_result(outs)


register_mode("MonitorMode", MonitorMode)
