"""Tiered compilation of long fused kernels (``config.tiered_compile``).

A kernel in block form (``elemwise.block_form``) has two builds: tier 1, the block
form, compiles fast; tier 2, its segments (``segments.py``), runs several times
faster but costs about three times the compile. When tier 2 is not in the compile
cache yet, ``build_kernels`` returns thunks running tier 1 and hands the tier 2
build to one background thread; when it is loaded, each thunk's context is pointed
at its tier 2 descriptor (``_ew_runtime.retarget``, under the GIL: a call reads its
descriptor once, so it runs wholly on one tier, and the old library stays loaded).
Both tiers compute the same scalar operations in the same order: the same bits.

``wait(timeout)`` blocks until every build handed over so far is done (a compiled
function's ``wait_compiled()``); ``tier_calls(thunk)`` says how many calls ran on
each tier (the profile prints it). At exit, builds not yet started are dropped and
the running one is waited for, 30 s at most, then its compiler is ended.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
import warnings

_jobs: queue.Queue = queue.Queue()
_state = {"thread": None, "closing": False, "warned": False}
_lock = threading.Lock()
_idle = threading.Condition(_lock)
_pending = [0]                 # builds handed over and not finished


class Tier2:
    """One background build: ``build()`` returns the tier 2 kernel table; then each
    registered thunk context is retargeted to its kernel there."""

    def __init__(self, build, runtime):
        self.build, self.runtime = build, runtime
        self.targets = []          # (ctx capsule, index in the tier 2 table)
        self.table = None          # kept: the descriptors the contexts point to
        self.done = threading.Event()
        self.error = None

    def run(self):
        try:
            if not _state["closing"]:
                self.table = self.build()
                for ctx, i in self.targets:
                    self.runtime.retarget(ctx, self.table, i)
        except Exception as exc:   # noqa: BLE001 - tier 1 keeps running; say it once
            self.error = exc
            if not _state["warned"]:
                _state["warned"] = True
                warnings.warn(f"vmc: the optimized build of a long fused kernel failed "
                              f"({type(exc).__name__}: {exc}); its first build keeps running",
                              stacklevel=2)
        finally:
            self.targets = []
            self.done.set()
            with _lock:
                _pending[0] -= 1
                _idle.notify_all()


def submit(job: Tier2) -> Tier2:
    """Queue ``job`` for the background thread (started on first use)."""
    with _lock:
        _pending[0] += 1
        if _state["thread"] is None:
            t = threading.Thread(target=_worker, name="vmc-tier2", daemon=True)
            _state["thread"] = t
            t.start()
    _jobs.put(job)
    return job


def _worker():
    while True:
        job = _jobs.get()
        _go.wait()
        job.run()


_go = threading.Event()        # cleared while held(): the worker starts no build
_go.set()


@contextlib.contextmanager
def held():
    """No background build starts within the block (tests use it to see tier 1)."""
    _go.clear()
    try:
        yield
    finally:
        _go.set()


def wait(timeout: float | None = None) -> bool:
    """Wait until every background build handed over so far has finished (and its
    kernels were switched); False if ``timeout`` seconds passed first."""
    with _lock:
        return _idle.wait_for(lambda: _pending[0] == 0, timeout)


def pending() -> int:
    """Background builds not finished yet."""
    return _pending[0]


def tier_calls(thunk) -> tuple | None:
    """``(calls on tier 1, calls on tier 2)`` of a long generated kernel's thunk, None
    for any other thunk (or when the runtime is not built)."""
    fn, ctx = getattr(thunk, "fn", None), getattr(thunk, "ctx", None)
    if fn is None or ctx is None:
        return None
    from .elemwise import runtime
    try:
        return runtime().tier_calls(fn, ctx)
    except RuntimeError:
        return None


def _after_fork_in_child():
    # the child has no worker thread, and the parent's builds are not its own
    global _jobs, _lock, _idle
    _jobs = queue.Queue()
    _lock = threading.Lock()
    _idle = threading.Condition(_lock)
    _state["thread"] = None
    _pending[0] = 0


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _at_exit():
    _state["closing"] = True     # queued builds finish at once, building nothing
    if not wait(timeout=30):
        from .cache import stop_compilers
        stop_compilers()         # the compiler would outlive this process
