"""What recording the pool's tasks for the timeline costs (issue 21).

    python bench/pool_trace_overhead.py [--quick]

Prints, best of several interleaved repeats (on, off, on, off, ...: the machine is
shared, so only figures taken side by side in one process are compared):
  * per task, jobs of 8 empty tasks run through the pool (``_ew_runtime.pool_time``):
    with one thread (every task on the caller: the cost of recording a row alone) and
    with two (the pool's hand-off, and two threads writing the ring), untraced and traced;
  * per call of a profiled function whose kernel the pool splits (tanh(x) * 2 + 1 on
    1e6 float64; 8 chunks at two threads), keeping its timeline
    (``profile_trace_calls=100``: chunks recorded) and not (``=0``).
Needs the extensions built: ``python setup.py build_ext --inplace``.
"""
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import vmc  # noqa: E402
import vmc.tensor as vt  # noqa: E402
from vmc.config import config  # noqa: E402
from vmc.thunks import pool_trace  # noqa: E402
from vmc.thunks.cgen.elemwise import runtime  # noqa: E402

QUICK = "--quick" in sys.argv
REPEAT = 5 if QUICK else 15
TASKS = 8


def per_task(threads, jobs):
    """(ns per task untraced, traced), best of REPEAT interleaved runs."""
    rt = runtime()
    best = {False: np.inf, True: np.inf}
    with config.change(threads=threads):
        rt.pool_time(TASKS, jobs, False)           # start the workers
        for _ in range(REPEAT):
            for traced in (False, True):
                ns = rt.pool_time(TASKS, jobs, traced) / (TASKS * jobs)
                best[traced] = min(best[traced], ns)
            pool_trace.events(clear=True)
    return best[False], best[True]


def per_call(n=1_000_000, calls=20):
    """(ns per call without the pool's rows, with them), best of REPEAT."""
    x = vt.dvector("x")
    a = np.linspace(-2.0, 2.0, n)
    fs = {}
    for kept in (0, 100):
        with config.change(profile_trace_calls=kept):
            fs[kept] = vmc.function([x], vt.tanh(x) * 2.0 + 1.0, profile=True)
    best = {0: np.inf, 100: np.inf}
    with config.change(threads=2):
        runtime().set_round_trip(1)                # split every call once timed
        for f in fs.values():
            for _ in range(4):
                f(a)
        jobs = runtime().pool_info()["traced_jobs"]
        for _ in range(REPEAT):
            for kept, f in fs.items():
                t0 = time.perf_counter_ns()
                for _ in range(calls):
                    f(a)
                best[kept] = min(best[kept], (time.perf_counter_ns() - t0) / calls)
            pool_trace.events(clear=True)
        traced = runtime().pool_info()["traced_jobs"] - jobs
        runtime().set_round_trip(0)
    assert traced == REPEAT * calls, traced        # only the traced function recorded
    return best[0], best[100]


def main():
    jobs = 2_000 if QUICK else 20_000
    for threads in (1, 2):
        off, on = per_task(threads, jobs)
        print(f"pool, {threads} thread(s), jobs of {TASKS} empty tasks: {off:7.1f} ns per task "
              f"untraced, {on:7.1f} traced (+{on - off:.1f} ns per task)")
    off, on = per_call()
    print(f"profiled f(x), tanh(x)*2+1 on 1e6 float64 split in {TASKS}: {off / 1e3:8.1f} us per "
          f"call without the pool's rows, {on / 1e3:8.1f} with them ({on / off:.3f}x)")


if __name__ == "__main__":
    main()
