"""The timeline of profiled functions, as Trace Event Format for Perfetto or
chrome://tracing: ``f.profile.to_chrome_trace(path)``, or
``to_chrome_trace(path)`` here for every profiled function in one file.

A profiled function's VM keeps the start and end of every instruction of its
last ``config.profile_trace_calls`` calls (``VM.set_trace``, written from the
VM's loop). The file shows them as they happened:

- one process per function, one track per Python thread that called it;
- a "call" event per call (the VM's run) with the instructions nested in it,
  each an "instruction" event that carries its pc, op class, kind (C or Py),
  the shape and dtype of its first output and the bytes it allocated;
- the gaps between calls as they were (timestamps are the monotonic clock's,
  in microseconds from when vmc was imported);
- an ifelse's taken branch as a "branch" event around the jump and its block;
- a scan's steps (those still in its body's trace) as "scan step" events
  nested in the scan's instruction, with the body's instructions in them;
- per thread, a counter track of the bytes the call's intermediates hold;
- on a GPU, a track of each instruction's kernel time measured with device
  events (only totals are kept: each launch shows the mean, from its launch;
  per-stream timestamps are future work);
- the chunks of an elementwise kernel the thread pool split (vmc.thunks.pool_trace):
  one track per pool thread ("vmc pool thread k"), each chunk a "pool task" event
  named as the instruction that launched it (so Perfetto gives both one colour),
  within that instruction's time. The chunks the launching thread ran itself nest
  under the instruction on that thread's own track: it is the same OS thread, and
  there the instruction's time reads as its own chunks plus the wait for the others.
"""
from __future__ import annotations

import json
import threading

import numpy as np

from vmc.program import JUMP, JUMP_IF_FALSE, THUNK, CThunk

try:
    from vmc._vm import now_ns as _now_ns
except ImportError:       # not built: the Python VM's clock is the same one
    import time
    _now_ns = time.perf_counter_ns

ORIGIN_NS = _now_ns()     # t = 0 of every timeline of this process
MAX_EVENTS = 1 << 19      # the most instruction events one trace buffer holds
DEVICE_TRACK = 1 << 16    # a thread track's tid + this: its GPU kernels
POOL_TRACK = 1 << 17      # + k: the track of pool thread k
_DTYPES = {np.dtype(c).num: str(np.dtype(c)) for c in np.typecodes["All"]}


def trace_length(n_instr, calls):
    """How many runs a VM of ``n_instr`` instructions keeps: ``calls``, or
    fewer when that many would pass ``MAX_EVENTS`` (at least one)."""
    if calls <= 0 or n_instr <= 0:
        return 0
    return max(1, min(calls, MAX_EVENTS // n_instr))


def to_chrome_trace(path, profiles=None):
    """Write the timelines of ``profiles`` (default: every profiled function
    that ran) to ``path``, one process each; return ``path``."""
    from .profiling import top_level_profiles
    profiles = top_level_profiles() if profiles is None else list(profiles)
    events = []
    for pid, prof in enumerate(profiles, 1):
        events += chrome_events(prof, pid)
    with open(path, "w") as fh:
        json.dump({"traceEvents": events, "displayTimeUnit": "ns"}, fh)
    return path


def chrome_events(prof, pid=1):
    """The Trace Event Format events of one ProfileStats."""
    fn = prof.fn
    name = getattr(fn, "name", None) or "vmc function"
    events = [_meta("process_name", pid, 0, f"vmc: {name}")]
    names = {t.ident: t.name for t in threading.enumerate()}
    device = prof.device_times() if hasattr(prof, "device_times") else {}
    tracks = {}
    runs = _runs(fn)
    for run, evs in runs:
        ident = run["thread"]
        if ident not in tracks:
            tracks[ident] = len(tracks) + 1
            events.append(_meta("thread_name", pid, tracks[ident],
                                f"Python thread {names.get(ident, ident)}"))
            if device:
                events.append(_meta("thread_name", pid, DEVICE_TRACK + tracks[ident],
                                    f"device kernels of {names.get(ident, ident)} (mean "
                                    f"time per launch, from its launch)"))
        tid = tracks[ident]
        events.append(_span(f"call {run['seq']}", "call", pid, tid, run["t_begin"],
                            run["t_end"], {"call": run["seq"]}))
        events += _instructions(fn, evs, pid, tid, ("call", run["seq"]))
        events += _device(fn.program, evs, device, pid, DEVICE_TRACK + tid)
        events += _branches(fn.program, evs, pid, tid)
        events += _live_bytes(evs, pid, tid, names.get(ident, ident))
    return events + _pool_tasks(fn, runs, pid, tracks)


def _pool_tasks(fn, runs, pid, tracks):
    """The pool's recorded tasks that ran within one of ``runs``' instructions,
    launched by that run's thread: on pool thread k's track, or nested under the
    instruction when the launching thread ran the task itself (worker 0). Each is
    named as the innermost instruction it ran in (a scan body's, in a scan)."""
    from vmc.thunks.pool_trace import events as pool_events
    rows = pool_events()
    out, workers, bodies = [], set(), {}
    if not len(rows):
        return out
    for run, evs in runs:
        mine = rows[(rows["caller"] == np.uint64(run["thread"])) &
                    (rows["t0"] >= run["t_begin"]) & (rows["t1"] <= run["t_end"])]
        if not len(mine) or not len(evs):
            continue
        # the instruction each row started in (instructions of a run follow one another)
        at = np.searchsorted(evs["t0"], mine["t0"], side="right") - 1
        for row, i in zip(mine, at):
            if i < 0 or row["t1"] > evs[i]["t1"]:
                continue
            pc, worker = int(evs[i]["pc"]), int(row["worker"])
            workers.add(worker)
            tid = tracks[run["thread"]] if worker == 0 else POOL_TRACK + worker
            label = _launcher(fn, evs[i], row, bodies)
            out.append(_span(label, "pool task", pid, tid, row["t0"], row["t1"],
                             {"pc": pc, "call": int(run["seq"]), "job": int(row["job"]),
                              "task": int(row["task"]), "of tasks": int(row["ntasks"]),
                              "items": [int(row["lo"]), int(row["hi"])], "worker": worker}))
    for k in sorted(workers - {0}):
        out.append(_meta("thread_name", pid, POOL_TRACK + k, f"vmc pool thread {k}"))
        out.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": POOL_TRACK + k,
                    "args": {"sort_index": POOL_TRACK + k}})
    return out


def _launcher(fn, ev, row, bodies):
    """The label of the innermost traced instruction that holds pool task ``row``,
    from ``fn``'s instruction event ``ev`` down through scan bodies (their runs
    cached in ``bodies``)."""
    while True:
        p, pc = fn.program, int(ev["pc"])
        inner = _inner(p, pc)
        hit = None
        if inner is not None:
            if id(inner) not in bodies:
                bodies[id(inner)] = _runs(inner)
            for run, evs in bodies[id(inner)]:
                if len(evs) and run["t_begin"] <= row["t0"] and row["t1"] <= run["t_end"]:
                    i = np.searchsorted(evs["t0"], row["t0"], side="right") - 1
                    hit = evs[i] if i >= 0 and row["t1"] <= evs[i]["t1"] else None
                    break
        if hit is None:
            return p.labels[pc] if pc < len(p.labels) else str(pc)
        fn, ev = inner, hit


def _device(p, evs, device, pid, tid):
    """GPU instructions' kernel time, measured with device events: only totals
    per instruction are kept, so each launch shows the mean, from its launch."""
    out = []
    for e in evs:
        ns, launches = device.get(int(e["pc"]), (0, 0))
        if ns:
            mean = ns / max(launches, 1)
            label = p.labels[int(e["pc"])]
            out.append(_span(label, "device", pid, tid, e["t0"], e["t0"] + mean,
                             {"pc": int(e["pc"]), "device us per launch": mean / 1e3}))
    return out


def _runs(fn):
    """``fn``'s traced runs: ``[(run, events)]`` from its VM, oldest first."""
    vm = getattr(fn, "vm", None)
    vm = vm if vm is not None and hasattr(vm, "trace") else fn
    return getattr(vm, "trace", None) or []


def _instructions(fn, evs, pid, tid, run):
    """One "instruction" event per executed instruction; ``run`` is ("call",
    seq) or ("body run", seq), for the events' args."""
    p = fn.program
    out = []
    for e in evs:
        pc = int(e["pc"])
        args = {"pc": pc, run[0]: run[1], "bytes allocated": int(e["nbytes"])}
        node = fn.node_of_pc.get(pc)
        if node is not None:
            args["op class"] = type(node.op).__name__
        if int(p.kind[pc]) == THUNK:
            thunk = p.thunks[int(p.thunk[pc])]
            args["kind"] = "C" if isinstance(thunk, CThunk) else "Py"
            if e["type_num"] >= 0:
                nd = int(e["ndim"])
                args["shape"] = [int(d) for d in e["dims"][:min(nd, 4)]] + ["?"] * (nd - 4)
                args["dtype"] = _DTYPES.get(int(e["type_num"]), "?")
        label = p.labels[pc] if pc < len(p.labels) else str(pc)
        out.append(_span(label, "instruction", pid, tid, e["t0"], e["t1"], args))
        inner = _inner(p, pc)
        if inner is not None:
            out += _steps(inner, e, pid, tid)
    return out


def _inner(p, pc):
    """The compiled body of instruction pc's thunk (a scan's), or None."""
    if int(p.kind[pc]) != THUNK:
        return None
    return getattr(p.thunks[int(p.thunk[pc])], "inner", None)


def _steps(inner, outer, pid, tid):
    """The body's traced runs inside the outer event: one "scan step" each."""
    out = []
    k = 0
    for run, evs in _runs(inner):
        if run["t_begin"] < outer["t0"] or run["t_end"] > outer["t1"]:
            continue
        out.append(_span(f"step {k}", "scan step", pid, tid, run["t_begin"], run["t_end"],
                         {"step": k, "body run": int(run["seq"])}))
        out += _instructions(inner, evs, pid, tid, ("body run", int(run["seq"])))
        k += 1
    return out


def _branches(p, evs, pid, tid):
    """A "branch" event around each ifelse jump and the block that ran after it."""
    out = []
    pcs = [int(pc) for pc in evs["pc"]]
    for i, pc in enumerate(pcs):
        if int(p.kind[pc]) != JUMP_IF_FALSE:
            continue
        target = int(p.target[pc])
        if i + 1 < len(pcs) and pcs[i + 1] == pc + 1:
            which, lo, hi = "then", pc + 1, target
        else:
            end = int(p.target[target - 1]) if int(p.kind[target - 1]) == JUMP else target
            which, lo, hi = "else", target, end
        last = i
        while last + 1 < len(pcs) and lo <= pcs[last + 1] < hi:
            last += 1
        out.append(_span(f"ifelse {which}", "branch", pid, tid, evs[i]["t0"],
                         evs[last]["t1"], {"pc": pc, "branch": which}))
    return out


def _live_bytes(evs, pid, tid, thread):
    return [{"name": f"live intermediate bytes ({thread})", "ph": "C", "pid": pid,
             "tid": tid, "ts": _us(e["t1"]), "args": {"bytes": int(e["live"])}}
            for e in evs]


def _span(name, cat, pid, tid, t0, t1, args):
    return {"name": name, "cat": cat, "ph": "X", "pid": pid, "tid": tid,
            "ts": _us(t0), "dur": (int(t1) - int(t0)) / 1e3, "args": args}


def _meta(what, pid, tid, name):
    return {"name": what, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}


def _us(t_ns):
    return (int(t_ns) - ORIGIN_NS) / 1e3
