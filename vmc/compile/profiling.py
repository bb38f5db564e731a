"""Per-thunk profiles of compiled functions: ``f.profile.summary()``.

A compiled function with ``profile=True`` (or ``config.profile``) holds a
``ProfileStats`` in ``f.profile``. The VM records, per instruction, the time
(ns) and the number of executions (``times``, ``counts``), the time of whole
runs (``vm_ns``) and, on the Python VM, the shapes, dtypes and bytes each
instruction produced (``out_shapes``); the call path hands the duration of
each whole call to ``record_call``. ``ProfileStats`` only reads and tabulates:

- ``summary(file=None)``: calls, time in and out of the VM, compile time per
  step, tables per op class, per op and per thunk, peak memory with and
  without frees;
- ``to_chrome_trace(path)``: the timeline of the last
  ``config.profile_trace_calls`` calls, for Perfetto or chrome://tracing
  (``vmc.compile.timeline``).

With ``config.profile`` or ``config.profile_at_exit`` set, the profile of
every function that ran is printed at exit (to stderr).
"""
from __future__ import annotations

import atexit
import sys
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from vmc.program import JUMP, JUMP_IF_FALSE, MOVE, THUNK, CThunk
from vmc.thunks.cgen.tiers import tier_calls

_ALL = []   # every ProfileStats made, for config.profile_at_exit


@dataclass
class Row:
    """One executed instruction."""
    pc: int
    label: str      # the op as printed ("Elemwise{add}", "ifelse", ...)
    op_class: str
    time_ns: int
    calls: int
    kind: str       # "C", "Py", "GPU" or "-" (jumps and moves)
    shapes: str     # the output shapes and dtypes seen most often
    device_ns: int = 0   # GPU instructions: kernel time on the device (events)
    tiers: tuple = None  # a long fused kernel: (calls on tier 1, on tier 2), else None


class ProfileStats:
    """Reads a compiled function's VM counters and tabulates them."""

    def __init__(self, fn, compile_timings):
        self.fn = fn
        self.compile_timings = dict(compile_timings)
        self.n_calls = 0          # calls recorded by record_call
        self.call_ns = 0          # their total duration
        _ALL.append(self)

    # -- recording -------------------------------------------------------------
    def record_call(self, t_ns):
        """Called by the function's call path after each profiled call with
        its whole duration (argument checks, run, commit, unpacking)."""
        self.n_calls += 1
        self.call_ns += int(t_ns)

    def reset(self):
        """Forget what was recorded so far (compile timings stay)."""
        self.n_calls = self.call_ns = 0
        _vm_of(self.fn).reset_profile()

    # -- reading -------------------------------------------------------------
    @property
    def calls(self):
        """Calls of the function: as recorded, or else the executions of the
        first instruction (which every run executes)."""
        if self.n_calls:
            return self.n_calls
        counts = np.asarray(self.fn.counts)
        return int(counts[0]) if counts.size else 0

    @property
    def thunk_ns(self):
        """Total time spent in instructions."""
        return int(np.asarray(self.fn.times, dtype=np.int64).sum())

    @property
    def vm_ns(self):
        """Total time inside the VM (runs), or the instruction time when the
        VM does not time its runs."""
        v = getattr(_vm_of(self.fn), "vm_ns", None)
        return int(v) if v else self.thunk_ns

    def rows(self):
        """One ``Row`` per instruction executed at least once, in program order."""
        f = self.fn
        p = f.program
        times = np.asarray(f.times, dtype=np.int64)
        counts = np.asarray(f.counts, dtype=np.int64)
        shapes = getattr(_vm_of(f), "out_shapes", None) or {}
        dev = self.device_times()
        rows = []
        for pc in range(p.n_instr):
            if counts[pc] == 0:
                continue
            node = f.node_of_pc.get(pc)
            label = p.labels[pc] if pc < len(p.labels) else "?"
            kind, tiers = "-", None
            if int(p.kind[pc]) == THUNK:
                t = p.thunks[int(p.thunk[pc])]
                kind = ("GPU" if getattr(t, "device", None) else
                        "C" if isinstance(t, CThunk) else "Py")
                tiers = tier_calls(t) if kind == "C" else None
                if tiers:   # C1, C2, or C12 when the switch came between calls
                    kind += "1" * bool(tiers[0]) + "2" * bool(tiers[1])
            op_class = type(node.op).__name__ if node is not None else "?"
            rows.append(Row(pc, label, op_class, int(times[pc]), int(counts[pc]), kind,
                            _shape_text(shapes.get(pc)), dev.get(pc, (0, 0))[0], tiers))
        return rows

    def device_times(self):
        """``{pc: (ns, launches)}``: the kernel time of each GPU instruction,
        measured on the device with events (``vmc.gpu.profile``); {} without one."""
        devices = {getattr(t, "device", None) for t in self.fn.program.thunks} - {None}
        if not devices:
            return {}
        from vmc.gpu.profile import device_times
        return device_times(id(self.fn.spec), devices)

    def by_key(self, key):
        """``{key: [time_ns, calls]}`` summed over rows; key is "op_class",
        "label" or a function of a Row."""
        get = (lambda r: getattr(r, key)) if isinstance(key, str) else key
        agg = defaultdict(lambda: [0, 0])
        for r in self.rows():
            a = agg[get(r)]
            a[0] += r.time_ns
            a[1] += r.calls
        return dict(agg)

    def memory(self):
        """``(peak with frees, peak without frees)`` in bytes, from the Program
        and the bytes each instruction was seen to allocate (Python VM), or
        ``None`` when no sizes were recorded."""
        shapes = getattr(_vm_of(self.fn), "out_shapes", None)
        if not shapes:
            return None
        return peak_memory(self.fn.program, _bytes_per_output(shapes))

    # -- printing --------------------------------------------------------------
    def summary(self, file=None, n=20):
        """Print the profile (to stdout by default); ``n`` rows per table."""
        out = file or sys.stdout
        w = lambda s="": print(s, file=out)   # noqa: E731
        calls, total, in_vm = self.calls, self.call_ns, self.vm_ns
        name = getattr(self.fn, "name", None) or "<unnamed>"
        w(f"Function profile: {name}")
        w(f"  calls: {calls}")
        if self.n_calls:
            w(f"  total time: {total / 1e9:.6f} s ({_us(total, calls)} per call)")
        w(f"  time inside the VM: {in_vm / 1e9:.6f} s ({_us(in_vm, calls)} per call); "
          f"in thunks: {self.thunk_ns / 1e9:.6f} s")
        if self.n_calls:
            w(f"  overhead outside the VM: {_us(max(total - in_vm, 0), calls)} per call")
        if self.compile_timings:
            comp = sum(self.compile_timings.values())
            steps = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in self.compile_timings.items())
            w(f"  compile: {comp * 1e3:.1f} ms ({steps})")
        mem = self.memory()
        if mem is not None:
            w(f"  peak memory of intermediates: {_mb(mem[0])} with frees, "
              f"{_mb(mem[1])} without")
        rows = self.rows()
        t_all = sum(r.time_ns for r in rows) or 1
        dev_all = sum(r.device_ns for r in rows)
        if dev_all:
            w(f"  device time (kernels, measured with events): {dev_all / 1e9:.6f} s "
              f"({_us(dev_all, calls)} per call); per thunk below as 'device'")
        for title, key in (("op class", "op_class"), ("op", "label")):
            items = sorted(self.by_key(key).items(), key=lambda kv: -kv[1][0])
            w(f"\n  per {title}:")
            w(f"    {'time':>10} {'%':>6} {'cum %':>6} {'calls':>8} {'per call':>10}  {title}")
            cum = 0.0
            for k, (t, c) in items[:n]:
                cum += 100.0 * t / t_all
                w(f"    {t / 1e9:9.6f}s {100.0 * t / t_all:6.1f} {cum:6.1f} {c:8d} "
                  f"{_us(t, c):>10}  {k}")
            _more(w, len(items), n)
        w("\n  per thunk:")
        dcol = f" {'device':>10}" if dev_all else ""
        w(f"    {'time':>10} {'%':>6} {'cum %':>6} {'calls':>8} {'per call':>10}{dcol} kind "
          f"{'pc':>4}  op  [output shapes]")
        cum = 0.0
        for r in sorted(rows, key=lambda r: -(r.time_ns + r.device_ns))[:n]:
            cum += 100.0 * r.time_ns / t_all
            dv = f" {_us(r.device_ns, r.calls):>10}" if dev_all else ""
            w(f"    {r.time_ns / 1e9:9.6f}s {100.0 * r.time_ns / t_all:6.1f} {cum:6.1f} "
              f"{r.calls:8d} {_us(r.time_ns, r.calls):>10}{dv} {r.kind:>4} {r.pc:4d}  "
              f"{r.label}  {r.shapes}")
        _more(w, len(rows), n)
        tiered = [r for r in rows if r.tiers]
        if tiered:
            w("\n  tiered kernels (config.tiered_compile; kind C1/C2 above): calls on tier 1 "
              "(fast build) and tier 2 (optimized, compiled in the background):")
            for r in tiered:
                w(f"    pc {r.pc:4d}: tier 1 {r.tiers[0]}, tier 2 {r.tiers[1]}  {r.label}")
        for pc, inner in _inner_profiles(self.fn):
            w(f"\n  inner function of instruction {pc}:")
            inner.summary(file=_Indented(out), n=n)

    def to_chrome_trace(self, path):
        """Write this function's timeline (its last ``config.profile_trace_calls``
        calls, instruction by instruction, as they ran) as a Trace Event Format
        file for Perfetto or chrome://tracing (``vmc.compile.timeline``)."""
        from .timeline import to_chrome_trace
        return to_chrome_trace(path, [self])

    @property
    def trace(self):
        """The VM's traced runs: ``[(run, events)]`` (``vmc._vm.VM.trace``)."""
        return getattr(_vm_of(self.fn), "trace", None) or []


def peak_memory(program, out_bytes):
    """``(peak with frees, peak without)``: walk the instructions in order
    (every block as if it ran), adding what each instruction allocates
    (``out_bytes[pc]``: bytes per output) and releasing registers at their
    frees. A move hands its buffer on, so freeing its source releases
    nothing. Views and in-place outputs allocate nothing (recorded as 0)."""
    live, cur, peak, total = {}, 0, 0, 0
    p = program
    for pc in range(p.n_instr):
        kind = int(p.kind[pc])
        outs = p.outs[p.out_start[pc]: p.out_start[pc] + p.n_out[pc]]
        if kind == THUNK:
            sizes = out_bytes.get(pc, ())
            for k, r in enumerate(outs):
                b = sizes[k] if k < len(sizes) else 0
                cur += b - live.get(int(r), 0)
                live[int(r)] = b
                total += b
        elif kind == MOVE:
            src = int(p.ins[p.in_start[pc]])
            live[int(outs[0])] = live.get(int(outs[0]), 0) + live.pop(src, 0)
        peak = max(peak, cur)
        if kind in (JUMP, JUMP_IF_FALSE):
            continue    # their frees are those of a skipped block, walked anyway
        for r in p.frees[p.free_start[pc]: p.free_start[pc] + p.n_free[pc]]:
            cur -= live.pop(int(r), 0)
    return peak, total


def _bytes_per_output(out_shapes):
    """pc -> the largest bytes seen per output."""
    result = {}
    for pc, seen in out_shapes.items():
        sizes = []
        for key in seen:
            for k, (_, _, nbytes) in enumerate(key):
                if k < len(sizes):
                    sizes[k] = max(sizes[k], nbytes)
                else:
                    sizes.append(nbytes)
        result[pc] = sizes
    return result


def _shape_text(seen):
    if not seen:
        return ""
    key, _ = max(seen.items(), key=lambda kv: kv[1])
    text = ", ".join(f"{s} {d}" if s is not None else "None" for s, d, _ in key)
    more = f" (+{len(seen) - 1} more)" if len(seen) > 1 else ""
    return f"[{text}]{more}"


def _vm_of(fn):
    """Where the VM counters live: the function itself, or its ``vm``."""
    vm = getattr(fn, "vm", None)
    return vm if vm is not None and hasattr(vm, "counts") else fn


def _inner_profiles(fn):
    """(pc, ProfileStats) of the inner functions of thunks (scan bodies)."""
    p = fn.program
    for pc in range(p.n_instr):
        if int(p.thunk[pc]) < 0:
            continue
        inner = getattr(p.thunks[int(p.thunk[pc])], "inner", None)
        prof = getattr(inner, "profile", None)
        if isinstance(prof, ProfileStats):
            yield pc, prof


def _us(t_ns, calls):
    return f"{t_ns / max(calls, 1) / 1e3:.2f}us"


def _mb(b):
    return f"{b / 2**20:.2f} MiB"


def _more(w, total, shown):
    if total > shown:
        w(f"    ... {total - shown} more")


class _Indented:
    """A file wrapper indenting every line (nested profiles)."""

    def __init__(self, out):
        self.out = out

    def write(self, s):
        self.out.write("\n".join("    " + line if line else line for line in s.split("\n")))


def top_level_profiles():
    """The profiles made so far of functions that ran, less those nested in
    another's (scan bodies: printed and traced inside their scan)."""
    nested = {id(inner) for prof in _ALL for _, inner in _inner_profiles(prof.fn)}
    return [p for p in _ALL if id(p) not in nested and p.calls]


def print_all(file=None):
    """Print every profile of a function that ran (``top_level_profiles``)."""
    out = file or sys.stderr
    for prof in top_level_profiles():
        prof.summary(file=out)
        print(file=out)


def _at_exit():
    # VMC_FLAGS=profile=True prints the profiles at exit, as Theano's did.
    from vmc.config import config
    if config.profile_at_exit or config.profile:
        print_all()


atexit.register(_at_exit)
