"""How a Scan node runs: its inner graph is compiled once (``InnerFunction``),
and the thunk drives the compiled body's VM step by step.

Per step, the thunk sets the inner inputs (views of the sequences, the
previous values of the recurrent outputs, the carries; the non-sequences are
set once), runs the inner program, and copies each traced output into its
preallocated trace buffer. The previous values themselves are the arrays the
inner program returned (no copy): a ring of the last ``lag`` values per
recurrent output. When the Cython driver (``vmc/scan/_scan_loop.pyx``) is
built and the inner function runs on the Cython VM, the loop over steps is
Cython; otherwise it is the Python loop below, which defines the semantics.
"""
from __future__ import annotations

import copy

import numpy as np

from vmc.compile import (FunctionSpec, In, Out, ProfileStats, ProfilingPyVM, enrich,
                         normalize_outputs, optimized_graph, prepare, schedule, trace_length)
from vmc.config import config
from vmc.thunks import blocks
from vmc.thunks.pool_trace import set_tracing as set_pool_tracing
from vmc.thunks.registry import register

from .op import Scan

try:
    from . import _scan_loop
except ImportError:        # not built: the Python loop runs instead
    _scan_loop = None
try:
    from vmc._vm import VM as _CVM
except ImportError:        # not built: the Python VM runs the body
    _CVM = None


class InnerFunction:
    """The compiled loop body: its optimized graph, Program and VM.

    Built from the pieces of ``vmc.function`` (prepare, optimize, schedule)
    rather than a ``Function``, because the body's inputs may be of any type
    (a random generator carry) and its calls need no argument checks. The VM
    is the Cython one when it is built and ``config.linker`` is "cvm", else
    the Python reference VM. ``vm.times``/``vm.counts`` hold per-instruction
    times while its profiling is on; ``profile`` is a ProfileStats over them.
    """

    def __init__(self, op, profile=None):
        linker = config.linker if _CVM is not None else "py"
        # The step's inputs are never overwritten: they are sequence rows, the
        # previous values (still in the rings) and the user's non-sequences.
        # The loop copies each step's outputs into its own buffers: they may
        # be the step's inputs (a carry passed through), no copy is needed.
        outputs, single = normalize_outputs([Out(v, borrow=True) for v in op.inner_outputs])
        spec = FunctionSpec(inputs=[In(v, name=v.name) for v in op.inner_inputs],
                            outputs=outputs, single=single, mode=op.info.mode,
                            name=f"{op.name}.inner", on_unused_input="ignore",
                            trust_input=True, no_default_updates=True, linker=linker)
        self.timings = {}
        inputs, outs, updates = prepare(spec)
        fgraph = optimized_graph(inputs, outs, len(outs), [], spec.mode, self.timings)
        fgraph, updates = self.place(fgraph, spec, updates)
        self.program, self.node_of_pc = schedule(fgraph, spec, updates)
        self.fgraph = fgraph
        self.name = spec.name
        self.vm = _CVM(self.program) if linker == "cvm" else ProfilingPyVM(self.program)
        self.run = self.vm.run
        self.profile = None
        self.described = None      # the failing step's input shapes, for messages
        if config.profile if profile is None else profile:
            self.set_profiling(True)

    def place(self, fgraph, spec, updates):
        """Where the body runs: as optimized (the CPU); a GPU driver's body
        moves it to its device (``vmc/gpu/thunks/scan.py``)."""
        return fgraph, updates

    def set_profiling(self, on):
        """Record the body's per-instruction times (accumulated over steps);
        ``profile`` is then a ProfileStats that the outer profile nests."""
        self.vm.set_profiling(bool(on))
        if on and self.profile is None:
            self.profile = ProfileStats(self, self.timings)
            # the last steps' timelines, nested in the scan's (vmc.compile.timeline)
            kept = trace_length(self.program.n_instr, config.profile_trace_calls)
            self.vm.set_trace(kept)
            if kept:
                set_pool_tracing(self.program.thunks, True)

    # What vmc.compile.errors.enrich and ProfileStats read:
    @property
    def failed_pc(self):
        return self.vm.failed_pc

    @property
    def failed_inputs(self):
        return self.described or getattr(self.vm, "failed_inputs", None)

    @property
    def times(self):
        return self.vm.times

    @property
    def counts(self):
        return self.vm.counts


def compile_inner(op, profile=None):
    """The loop body of ``op`` compiled (inputs in the op's inner order)."""
    return InnerFunction(op, profile)


class ScanThunk:
    """The callable the VM runs for a Scan node: ``thunk(n_steps, *inputs)``
    returns the node's outputs (a tuple, or the value when there is one).

    ``inner`` is the compiled loop body (an ``InnerFunction``); with
    ``inner.profile`` set (``config.profile`` at compile time, or
    ``set_profiling(True)``) its per-instruction times accumulate over all
    steps, for the profiler to show nested under the scan.
    """

    def __init__(self, node):
        op = node.op
        self.op = op
        self.node = node
        info = op.info
        self.info = info
        self.inner = self.compile(op)
        self.vm = self.inner.vm
        self.lags = info.lags
        self.n_in = len(op.inner_inputs)
        self.seq_used = _used_inputs(self.inner)[:info.n_seqs]
        self.rec_dtypes = [np.dtype(t.dtype) for t in op.state_types()]
        _, nits, _, _ = op.split_inner_outputs()
        self.nit_types = [v.type for v in nits]
        self.use_cython = _scan_loop is not None and _scan_loop.can_drive(self.vm)

    state_class = None           # LoopState (set below); a GPU driver's holds device buffers

    def compile(self, op):
        return compile_inner(op)

    def set_profiling(self, on):
        self.inner.set_profiling(on)

    def __call__(self, n_steps, *inputs):
        op = self.op
        _, seqs, inits, carries, nonseqs = op.split_outer_inputs((n_steps,) + inputs)
        n = self._n_steps(int(n_steps), seqs)
        for k, (init, lag) in enumerate(zip(inits, self.lags)):
            if init.shape[0] < lag:
                raise ValueError(f"{op}: the initial value of {op.label('outs', k)} has "
                                 f"{init.shape[0]} entries along its first dim, but its "
                                 f"taps {list(op.info.rec_taps[k])} need {lag}")
        state = self.state_class(self, n, inits, carries)
        args = [None] * self.n_in
        base = self.n_in - len(nonseqs)
        args[base:] = nonseqs
        if self.use_cython:
            done = _scan_loop.run_loop(self, state, seqs, args, n)
        else:
            done = self._python_loop(state, seqs, args, n)
        return state.results(done, inputs)

    def _n_steps(self, n_steps, seqs):
        op, info = self.op, self.info
        lengths = [s.shape[0] for s in seqs]
        if info.infer_steps:
            if not lengths:
                raise ValueError(f"{op}: no sequences and no n_steps")
            if any(n != lengths[0] for n in lengths):
                detail = ", ".join(f"{op.label('seqs', j)}: {n} steps"
                                   for j, n in enumerate(lengths))
                raise ValueError(f"{op}: the sequences have different lengths ({detail}); "
                                 f"give sequences of equal length, or pass n_steps to use "
                                 f"the first n_steps entries of each")
            return lengths[0]
        if n_steps < 0:
            raise ValueError(f"{op}: n_steps is {n_steps}; it must be >= 0")
        for j, n in enumerate(lengths):
            if n < n_steps:
                raise ValueError(f"{op}: n_steps is {n_steps} but {op.label('seqs', j)} has "
                                 f"only {n} entries")
        return n_steps

    def _python_loop(self, st, seqs, args, n):
        info, run = self.info, self.vm.run
        ns, n_rec, n_nit, n_carry = info.n_seqs, info.n_rec, info.n_nit, info.n_carry
        seq_pos = [j for j in range(ns) if self.seq_used[j]]
        tap_pos = []
        p = ns
        for k, taps in enumerate(info.rec_taps):
            for tap in taps:
                tap_pos.append((p, k, tap))
                p += 1
        carry_base = p
        rings, lags = st.rings, self.lags
        for s in range(n):
            i = n - 1 - s if info.reverse else s       # step i reads and writes entry i
            for j in seq_pos:
                args[j] = seqs[j][i, ...]
            for p, k, tap in tap_pos:
                args[p] = rings[k][(i + tap) % lags[k]]
            for m in range(n_carry):
                args[carry_base + m] = st.carries[m]
            try:
                outs = run(args)
            except Exception as exc:
                raise self._step_error(exc, i) from None
            for k in range(n_rec):
                st.write_rec(k, i, outs[k])
                st.advance_ring(k, i)
            for l in range(n_nit):
                st.write_nit(l, i, outs[n_rec + l])
            for m in range(n_carry):
                st.carries[m] = outs[n_rec + n_nit + m]
            if info.until and outs[-1]:
                return i + 1
        return n

    def _step_error(self, exc, i, failed_inputs=None):
        self.inner.described = failed_inputs
        try:
            new = enrich(self.inner, exc)
        finally:
            self.inner.described = None
        msg = f"{new}\n  at step {i} of {self.op}"
        try:
            out = type(new)(msg)
        except Exception:
            new.add_note(msg)
            return new
        out.__traceback__ = new.__traceback__
        return out


class LoopState:
    """The trace buffers, the rings of previous values and the carries of one call.

    A recurrent output's ring holds views of its trace rows (``y_t`` at
    ``ring[t % lag]``), not the arrays the body returned: once copied into
    the trace, a step's output is held by nothing else, so a thunk may reuse
    its buffer at the next step. A trace that keeps only its last entries is
    circular with at least ``lag + 1`` rows, so that the row a step writes is
    never one it reads (an output may be a view of an input).
    """

    def __init__(self, thunk, n, inits, carries):
        self.thunk = thunk
        info = thunk.info
        self.n = n
        self.carries = list(carries)
        self.rings, self.traces, self.sizes, self.shapes = [], [], [], []
        for k, (init, lag) in enumerate(zip(inits, thunk.lags)):
            keep, total = info.keep[k], lag + n
            size = total if keep <= 0 else max(min(keep, total), min(lag + 1, total))
            buf = blocks.empty((size,) + init.shape[1:], thunk.rec_dtypes[k])
            for r in range(lag):
                buf[r % size] = init[r]
            self.rings.append([buf[r % size] for r in range(lag)])
            self.traces.append(buf)
            self.sizes.append(size)
            self.shapes.append(init.shape[1:])
        for l in range(info.n_nit):
            keep = info.keep[info.n_rec + l]
            self.sizes.append(n if keep <= 0 else min(keep, n))
            self.traces.append(None)          # allocated at step 0 (shape unknown before)
            self.shapes.append(None)

    def write_rec(self, k, i, v):
        """Store step ``i``'s value of recurrent output ``k``; the Cython loop
        calls this only when its memcpy does not apply."""
        shape = self.shapes[k]
        if np.shape(v) != shape:
            self._bad_shape(k, i, v, shape)
        slot = (i + self.thunk.lags[k]) % self.sizes[k]
        self.traces[k][slot] = v

    def advance_ring(self, k, i):
        slot = (i + self.thunk.lags[k]) % self.sizes[k]
        self.rings[k][i % self.thunk.lags[k]] = self.traces[k][slot]

    def write_nit(self, l, i, v):
        k = self.thunk.info.n_rec + l
        buf = self.traces[k]
        if buf is None:
            v = np.asarray(v)
            dtype = np.dtype(self.thunk.nit_types[l].dtype)
            buf = self.traces[k] = blocks.empty((self.sizes[k],) + v.shape, dtype)
            self.shapes[k] = v.shape
        elif np.shape(v) != self.shapes[k]:
            self._bad_shape(k, i, v, self.shapes[k])
        buf[i % self.sizes[k]] = v

    def _bad_shape(self, k, i, v, shape):
        op = self.thunk.op
        first = "its initial value" if k < self.thunk.info.n_rec else "at step 0"
        raise ValueError(f"{op}: {op.label('outs', k)} has shape {np.shape(v)} at step {i}, "
                         f"but shape {shape} {first}; the value of an output must keep its "
                         f"shape across steps")

    def results(self, done, inputs):
        """The node's outputs after ``done`` steps."""
        thunk = self.thunk
        info = thunk.info
        outs = []
        for k in range(info.n_traces):
            lag = thunk.lags[k] if k < info.n_rec else 0
            buf, size = self.traces[k], self.sizes[k]
            if buf is None:       # an output that was never computed: zero steps
                t = thunk.nit_types[k - info.n_rec]
                shape = (0,) + tuple(0 if s is None else s for s in t.shape)
                outs.append(np.empty(shape, dtype=t.dtype))
                continue
            total = lag + done
            if info.keep[k] <= 0:
                outs.append(buf[:total])
            else:
                m = min(info.keep[k], total)
                outs.append(buf[np.arange(total - m, total) % size])
        for v in self.carries:
            outs.append(_own(v, inputs))
        return outs[0] if len(outs) == 1 else tuple(outs)


ScanThunk.state_class = LoopState


def _own(v, inputs):
    """A carry's final value, never sharing memory with an input of the node
    (the scheduler treats the node's outputs as new buffers) nor held by an
    inner thunk (random thunks reuse their generators)."""
    if isinstance(v, np.ndarray):
        if not v.flags.owndata or any(v is x for x in inputs):
            return v.copy()
        return v
    return copy.deepcopy(v)


def _used_inputs(fn):
    """For each input of the compiled function, whether its program reads it."""
    fg = fn.fgraph
    return [bool(fg.clients.get(v)) for v in fg.inputs]


def inner_functions(fn):
    """``[(pc, InnerFunction)]`` for the Scan instructions of the compiled
    function ``fn``: what a profiler nests under each scan (``inner.profile``,
    ``inner.times``, ``inner.counts``, ``inner.program``, ``inner.node_of_pc``)."""
    out = []
    program = fn.program
    for pc in range(program.n_instr):
        t = program.thunk[pc]
        th = program.thunks[t] if t >= 0 else None
        if isinstance(th, ScanThunk):
            out.append((pc, th.inner))
    return out


@register(Scan)
def scan_thunk(node, destroyable):
    return ScanThunk(node)
