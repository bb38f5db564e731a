"""The thread pool's side of the timeline (issue 21): which pool thread ran which
chunk of a split elementwise kernel, and when.

A function that keeps a timeline (``profile=True`` and ``config.profile_trace_calls``
> 0) turns recording on for its elementwise thunks (``set_tracing``); each task of a
call the pool splits then writes one row to a per-process ring, from C, without the
GIL (vmc/thunks/cgen/vmc_pool_trace.h). ``events()`` reads the rows back;
``vmc.compile.timeline`` puts them on one track per pool thread, under the
instruction that launched them. Thunks of other functions record nothing, and a
thunk that does not record pays one branch per task.
"""
from __future__ import annotations

import numpy as np

# One row per task; the layout of vmc_pool_event (vmc_pool_trace.h).
POOL_EVENT = np.dtype([
    ("job", np.int64),       # job number in this process (traced jobs only)
    ("task", np.int64),      # this task of the job's ntasks
    ("ntasks", np.int64),
    ("worker", np.int64),    # 0: the thread that launched the job; k >= 1: pool thread k
    ("lo", np.int64),        # items [lo, hi) of the job's split axis (of the collapsed shape)
    ("hi", np.int64),
    ("t0", np.int64),        # start and end, CLOCK_MONOTONIC ns (the VM trace's clock)
    ("t1", np.int64),
    ("caller", np.uint64),   # the launching thread: threading.get_ident() there
    ("seq", np.uint64),      # the row's index in the ring, + 1
])


def _runtime():
    try:
        from vmc.thunks.cgen.elemwise import runtime
        return runtime()
    except RuntimeError:      # not built: no pool, nothing to trace
        return None


def set_tracing(thunks, on=True) -> int:
    """Record (or stop recording) the pool tasks of the elementwise thunks among
    ``thunks`` (a Program's thunk table); how many there were."""
    rt = _runtime()
    if rt is None:
        return 0
    n = 0
    for t in thunks:
        ctx = getattr(t, "ctx", None)
        if ctx is not None and rt.set_pool_trace(t.fn, ctx, bool(on)):
            n += 1
    return n


def events(clear=False) -> np.ndarray:
    """The recorded tasks still in the ring, oldest first (``POOL_EVENT`` rows);
    with ``clear``, later reads start after them."""
    rt = _runtime()
    if rt is None:
        return np.zeros(0, POOL_EVENT)
    return np.frombuffer(rt.pool_trace(clear=clear), POOL_EVENT)
