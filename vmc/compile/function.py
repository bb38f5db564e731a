"""``vmc.function``: from user graphs to a callable ``Function``.

The pipeline, one plain step each::

    user graph --prepare--> checked graph --optimize--> FunctionGraph
               --schedule--> Program --VM--> Function

Optimizing goes through the optimized-graph cache (``graph_cache``): a graph
optimized before is rebuilt instead of rewritten.

``Function`` is the VM itself (a subclass of the Cython ``VM`` or of the
Python ``PyCallVM``), so a call goes straight into the VM's call path.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

import numpy as np

from vmc.config import config
from vmc.graph.basic import (Constant, SharedVariable, Variable, fixed_trace, user_line,
                             without_test_values)
from vmc.graph.traversal import ancestors, clone_replace, gc_paused

from . import schedule as sch
from .graph_cache import optimized_graph
from .instrument import InstrumentedMode
from .io import In, Out, collect_updates, normalize_inputs, normalize_outputs
from .outputs import arrays_for_0d_outputs, guard_outputs, with_mutable_inputs
from .pyvm import PyCallVM
from .thunk_build import build_thunks

try:
    from vmc._vm import VM as _CVM
except ImportError:     # not built: the Python VM runs everything (linker "py")
    _CVM = None


@dataclasses.dataclass
class FunctionSpec:
    """Everything ``vmc.function`` was asked for, normalized: what a compiled
    function is rebuilt from (``copy``, pickling) and what scan compiles its
    loop body with."""
    inputs: list                  # [In]
    outputs: list                 # [Out]
    single: bool                  # one output given, not a list: return it unwrapped
    updates: Any = None           # pairs or a dict: shared variable -> new value
    givens: Any = None            # pairs or a dict: variable -> replacement
    mode: Any = None              # a mode name, a Mode, or None (config.optimizer)
    name: str | None = None
    profile: bool = False
    allow_input_downcast: bool | None = None
    on_unused_input: str = "raise"
    trust_input: bool = False
    no_default_updates: bool = False
    linker: str = "cvm"           # "cvm" (the Cython VM) or "py" (the reference VM)


class Function:
    """A compiled function. Call it with its inputs (positionally or by name).

    Attributes: ``inputs``/``outputs`` (the In/Out specs), ``fgraph`` (the
    optimized graph), ``program``, ``profile`` (when profiling),
    ``trust_input`` (skip argument checks), ``name``.
    """

    def _setup(self, spec, fgraph, program, node_of_pc, timings):
        self.spec = spec
        self.fgraph = fgraph
        self.node_of_pc = node_of_pc
        self.name = spec.name
        self.inputs = spec.inputs
        self.outputs = spec.outputs
        self.unpack_single = spec.single
        self.trust_input = bool(spec.trust_input)
        self.input_names = [i.name for i in self.inputs]
        allow = spec.allow_input_downcast
        types = [i.variable.type for i in self.inputs]
        filters = [_make_filter(t, k, i.name, allow) for k, (t, i) in
                   enumerate(zip(types, self.inputs))]
        specs = [_fast_path_spec(t) for t in types]
        self.set_input_specs([d for d, _, _ in specs], [n for _, n, _ in specs],
                             [s for _, _, s in specs], filters)
        self.profile = None
        if spec.profile:
            from .profiling import ProfileStats
            from vmc.thunks.pool_trace import set_tracing as set_pool_tracing

            from .timeline import trace_length
            self.profile = ProfileStats(self, timings)
            self.set_profiling(True)
            kept = trace_length(program.n_instr, config.profile_trace_calls)
            self.set_trace(kept)
            if kept:      # and its split kernels' chunks, on the pool threads' tracks
                set_pool_tracing(program.thunks, True)
            for thunk in program.thunks:      # scan bodies profile their own steps
                inner = getattr(thunk, "set_profiling", None)
                if inner is not None:
                    inner(True)

    # -- hooks the VM's call path uses -------------------------------------
    def _bind(self, args, kwargs):
        n = len(self.inputs)
        if len(args) > n:
            raise TypeError(f"{self._fname()} takes {n} argument(s), got {len(args)}")
        values = list(args) + [_MISSING] * (n - len(args))
        for key, v in kwargs.items():
            if key not in self.input_names:
                raise TypeError(f"{self._fname()} got an unexpected keyword argument "
                                f"{key!r}; its inputs are {self.input_names}")
            k = self.input_names.index(key)
            if values[k] is not _MISSING:
                raise TypeError(f"{self._fname()} got multiple values for input {key!r}")
            values[k] = v
        for k, v in enumerate(values):
            if v is _MISSING:
                default = self.inputs[k].value
                if default is None:
                    raise TypeError(f"{self._fname()} is missing argument {k} "
                                    f"({self.inputs[k].name or 'unnamed'}): expected "
                                    f"{self.inputs[k].variable.type}")
                values[k] = default
        return values

    def _handle_error(self, exc):
        from .errors import enrich
        raise enrich(self, exc) from None

    def _fname(self):
        return f"function {self.name!r}" if self.name else "the compiled function"

    # -- API ------------------------------------------------------------------
    def copy(self, share_memory=False):
        """A new Function over the same graph; unless ``share_memory``, with
        its own copies of the shared variables' values."""
        spec = self.spec
        if not share_memory:
            spec = _with_copied_shared(spec)
        return _compile(spec)

    def free(self):
        """Release the intermediate buffers kept between calls."""
        self.clear_registers()

    def wait_compiled(self, timeout=None):
        """Wait until the optimized builds compiling in the background are done and
        in use (``config.tiered_compile``: long fused kernels run a fast-built form
        until then; both give the same results). Waits for every background build
        started so far, this function's among them; False if ``timeout`` seconds
        passed first."""
        from vmc.thunks.cgen.tiers import wait
        return wait(timeout)

    def __reduce__(self):
        return (_compile, (self.spec,))

    def __repr__(self):
        return f"<vmc.Function {self.name or ''} {len(self.inputs)} in, " \
               f"{len(self.outputs)} out, {self.program.n_instr} instructions>"


_MISSING = object()


def _fast_path_spec(t):
    """(dtype, ndim, shape with -1 for unknown) an argument of type ``t`` must
    have to skip its filter. A non-tensor input (a random generator) never
    takes the ndarray fast path: an object-dtype 0-d spec sends it through
    its type's filter."""
    if getattr(t, "dtype", None) is None:
        return np.dtype(object), 0, ()
    return np.dtype(t.dtype), t.ndim, tuple(-1 if s is None else s for s in t.shape)


def _make_filter(t, k, name, allow_downcast):
    label = f"argument {k}" + (f" ({name!r})" if name else "")
    # Theano's rule for allow_input_downcast=None: a Python float may go into
    # an input of dtype floatX (0.1 into a float32 learning rate), even where
    # that loses precision; anything else only when exact.
    floats_ok = allow_downcast is None and getattr(t, "dtype", None) == config.floatX

    def filt(value):
        if floats_ok and type(value) is float:
            return t.filter(value, name=label, allow_downcast=True)
        return t.filter(value, name=label, allow_downcast=bool(allow_downcast))
    return filt


class PyFunction(Function, PyCallVM):
    def __init__(self, program):
        PyCallVM.__init__(self, program)


if _CVM is not None:
    class CFunction(Function, _CVM):
        pass
else:
    CFunction = None


def function(inputs, outputs=None, updates=None, givens=None, mode=None, profile=None,
             name=None, allow_input_downcast=None, on_unused_input=None,
             trust_input=False, no_default_updates=False):
    """Compile ``outputs`` (a variable or a list) as a function of ``inputs``.

    ``updates``: pairs (or a dict) of shared variable -> new value, committed
    together after each successful call. ``givens``: pairs of variable ->
    replacement applied before compiling. ``mode``: "fast_run",
    "fast_compile", "None" (no rewrites), a ``vmc.Mode``, or None for
    ``config.optimizer`` (as in Theano). The VM is the mode's ``linker``, else
    ``config.linker``: "cvm" (Cython) or "py" (the reference). ``profile``:
    True to time every instruction (``f.profile.summary()``).
    """
    if isinstance(inputs, (Variable, In)):
        raise TypeError("function: inputs must be a list of variables")
    outs, single = normalize_outputs(outputs)
    spec = FunctionSpec(inputs=normalize_inputs(inputs), outputs=outs, single=single,
                        updates=updates, givens=givens, mode=mode, name=name,
                        profile=config.profile if profile is None else bool(profile),
                        allow_input_downcast=allow_input_downcast,
                        on_unused_input=on_unused_input or config.on_unused_input,
                        trust_input=trust_input,
                        no_default_updates=no_default_updates, linker=_linker(mode))
    return _compile(spec)


def _linker(mode):
    from vmc.opt import get_mode
    linker = getattr(get_mode(mode), "linker", None) or config.linker
    if linker not in ("cvm", "py"):
        raise ValueError(f"function: unknown linker {linker!r}; expected 'cvm' or 'py'")
    if linker == "cvm" and CFunction is None:
        warnings.warn("vmc: the Cython VM is not built (run `pip install -e .`); "
                      "using the Python VM", stacklevel=3)
        return "py"
    return linker


def _compile(spec):
    if config.device != "cpu":
        from vmc.gpu import get_device
        get_device(config.device)       # GpuUnavailableError: what is missing, how to get it
    # Every node made while compiling would walk the stack to the same user
    # frame (the caller of ``function``): find it once. Compiling allocates
    # many small containers; the cyclic collector would rescan every live
    # graph object several times (about a tenth of a warm compile).
    with gc_paused(), fixed_trace(user_line()), without_test_values():
        return _compile_traced(spec)


def _compile_traced(spec):
    timings = {}
    t0 = time.perf_counter()
    inputs, outs, updates = prepare(spec)
    timings["prepare"] = time.perf_counter() - t0
    fgraph = optimized_graph(inputs, outs + [u for _, u in updates], len(outs),
                             [s for s, _ in updates], spec.mode, timings)
    t1 = time.perf_counter()
    fgraph, updates = place_on_device(fgraph, spec, updates)
    timings["device placement"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    program, node_of_pc = schedule(fgraph, spec, updates)
    timings["schedule+thunks"] = time.perf_counter() - t1
    cls = CFunction if spec.linker == "cvm" and CFunction is not None else PyFunction
    if any(i.mutable for i in spec.inputs):
        cls = with_mutable_inputs(cls)
    if program.graph_state is not None:
        cls = _with_graphs(cls)
    f = cls(program)
    f._setup(spec, fgraph, program, node_of_pc, timings)
    return f


def _with_graphs(cls):
    """A subclass whose calls tell the replay state (``vmc.gpu.graphs``) how they went."""
    class GraphFunction(cls):
        def __call__(self, *args, **kwargs):
            state = self.program.graph_state
            try:
                out = cls.__call__(self, *args, **kwargs)
            except BaseException:
                state.after_call(False)
                raise
            state.after_call(True)
            return out
    return GraphFunction


def place_on_device(fgraph, spec, updates, device=None, outputs_on_device=False,
                    inputs_on_device=frozenset()):
    """The graph with its work moved to ``device`` (default ``config.device``;
    ``vmc.gpu.transfer``), and the updates naming the device twins of device
    shared variables; as it was when everything runs on the CPU and no value
    lives on a device. ``outputs_on_device``: device results stay GpuArrays;
    ``inputs_on_device``: positions of inputs that arrive as GpuArrays (both for a
    scan body, whose loop keeps its values on the device)."""
    import sys
    device = device or config.device
    on_device = device != "cpu"
    if not on_device and "vmc.gpu.shared" not in sys.modules:
        return fgraph, updates              # no device value can exist
    if not on_device:
        from vmc.gpu.shared import GpuSharedVariable
        if not any(isinstance(v, GpuSharedVariable) for v in fgraph.variables) and not any(
                isinstance(s, GpuSharedVariable) for s, _ in updates):
            return fgraph, updates
    from vmc.gpu import get_device
    from vmc.gpu.transfer import to_device
    borrowed = frozenset(k for k, o in enumerate(spec.outputs) if o.borrow)
    device = get_device(device).name if on_device else None
    fgraph, twins = to_device(fgraph, device, borrowed, outputs_on_device, inputs_on_device)
    return fgraph, [(twins.get(s, s), v) for s, v in updates]


def prepare(spec):
    """Givens, default updates and checks of a ``FunctionSpec``: returns the
    inputs, the outputs and the (shared variable, new value) pairs."""
    inputs = [i.variable for i in spec.inputs]
    outs = [o.variable for o in spec.outputs]
    updates = collect_updates(spec.updates, outs, spec.no_default_updates)
    givens = spec.givens
    if givens:
        pairs = list(givens.items()) if isinstance(givens, dict) else list(givens)
        everything = clone_replace(outs + [u for _, u in updates], pairs)
        outs, new_vals = everything[:len(outs)], everything[len(outs):]
        updates = [(s, v) for (s, _), v in zip(updates, new_vals)]
    _check_inputs(inputs, outs + [u for _, u in updates], spec.on_unused_input)
    return inputs, outs, updates


def _check_inputs(inputs, roots, on_unused):
    seen = set()
    for k, v in enumerate(inputs):
        if isinstance(v, (Constant, SharedVariable)):
            raise TypeError(f"function: input {k} ({v!r}) is a {type(v).__name__}; inputs "
                            f"must be free variables (use givens to replace a shared one)")
        if v in seen:
            raise ValueError(f"function: input {v!r} is given twice")
        seen.add(v)
    reached = ancestors(roots, blockers=inputs)      # one walk for both checks
    needed = set(reached)
    for k, v in enumerate(inputs):
        if v not in needed and on_unused != "ignore":
            msg = (f"function: input {k} ({v!r}) is not used to compute the outputs; "
                   f"pass on_unused_input='ignore' (or 'warn') to allow it")
            if on_unused == "raise":
                raise ValueError(msg)
            warnings.warn(msg, stacklevel=4)
    missing = [v for v in reached
               if v.owner is None and v not in seen
               and not isinstance(v, (Constant, SharedVariable))]
    if missing:
        raise ValueError(f"function: the outputs depend on {missing[0]!r} "
                         f"({missing[0].type}), which is not among the inputs; add it to "
                         f"the inputs or replace it with givens")


@without_test_values()      # the compiler's nodes (output copies, checks) are not the user's
def schedule(fgraph, spec, update_pairs):
    """Order, frees, in-place decisions and thunks of an optimized graph: a
    ``(Program, {pc: node})``."""
    n_out = fgraph.n_user_outputs
    sch.split_async(fgraph)
    order = fgraph.toposort()
    roots = sch.alias_roots(order, [v for v in fgraph.variables if v.owner is None])
    # What the user gets back is the user's own: later in-place updates, the
    # caller's writes into one result, or the next call never change it.
    guard_outputs(fgraph, roots, [o.borrow for o in spec.outputs])
    order = fgraph.toposort()
    outputs = list(fgraph.outputs)
    user_outs = outputs[:n_out]
    update_pairs = [(s, outputs[n_out + k]) for k, (s, _) in enumerate(update_pairs)]
    roots = sch.alias_roots(order, [v for v in fgraph.variables if v.owner is None])
    late = _inplace_update_nodes(fgraph, update_pairs, user_outs)
    code, placed = sch.linearize(order, outputs, late=list(late),
                                 precheck=lambda nodes: _precheck(nodes, late),
                                 reorder=lambda code, nodes: _late_order(code, nodes, late, roots))
    late = {n: late[n] for n in placed}
    inputs = list(fgraph.inputs)
    mutable = {v for v, i in zip(inputs, spec.inputs) if i.mutable}
    keep = set(inputs) | set(outputs) | {v for v in fgraph.variables if sch.is_storage(v)}
    last_read = sch.plan_frees(code, keep if config.allow_gc else set(fgraph.variables))
    protected = frozenset((set(inputs) - mutable) | {v for v in fgraph.variables
                                                     if sch.is_storage(v)} | set(outputs))
    destroy = sch.destroyable_inputs(code, roots, protected, last_read, late, outputs)
    from vmc.opt import get_mode
    mode = get_mode(spec.mode)
    thunk_index, thunks, node_of_pc = build_thunks(
        code, destroy, spec.linker, mode.optimizer == "fast_run",
        profile_key=id(spec) if spec.profile else None)
    arrays_for_0d_outputs(code, thunk_index, thunks, user_outs)
    graph_state = None
    if isinstance(mode, InstrumentedMode):      # DebugMode, NanGuardMode, MonitorMode
        thunks = mode.instrument(code, thunk_index, thunks, destroy)
    elif config.gpu_graphs and spec.linker == "cvm" and not spec.profile:
        thunks, graph_state = _for_gpu_graphs(code, thunk_index, thunks)
    regs = _registers(inputs, order, outputs, fgraph.variables)
    consts = [v for v in regs if isinstance(v, Constant)]
    shareds = [v for v in regs if isinstance(v, SharedVariable)]
    program = sch.assemble(code, thunk_index, thunks, regs, inputs, user_outs, consts,
                           shareds, update_pairs)
    program.graph_state = graph_state
    return program, node_of_pc


def _for_gpu_graphs(code, thunk_index, thunks):
    """``config.gpu_graphs``: the thunks wrapped to capture the device work once
    and replay it (``vmc.gpu.graphs``), and the replay state; unchanged (and
    None) when no instruction runs on a device."""
    from .thunk_build import _device_name
    pcs = sorted(thunk_index, key=thunk_index.get)
    devices = {_device_name(code[pc].node) for pc in pcs} - {None}
    if len(devices) != 1:
        return thunks, None
    from vmc.gpu import get_device
    from vmc.gpu.graphs import wrap
    counts = [(len(code[pc].ins), len(code[pc].outs)) for pc in pcs]
    return wrap(thunks, [code[pc].node for pc in pcs], counts, get_device(devices.pop()))


def _registers(inputs, order, outputs, variables):
    """variable -> register: the inputs, then in the order nodes read and make
    them. It follows the graph's structure only, so a graph rebuilt from the
    optimized-graph cache gets the program a fresh optimization gets."""
    regs = {}
    for v in inputs:
        regs.setdefault(v, len(regs))
    for node in order:
        for v in node.inputs:
            regs.setdefault(v, len(regs))
        for v in node.outputs:
            regs.setdefault(v, len(regs))
    for v in outputs:
        regs.setdefault(v, len(regs))
    for v in sorted(variables - regs.keys(), key=lambda v: v.id):   # nothing reads them
        regs.setdefault(v, len(regs))
    return regs


def _inplace_update_nodes(fgraph, update_pairs, user_outs):
    """Nodes computing a shared variable's new value that may write it into
    the old value's buffer: map node -> the shared variable."""
    late = {}
    outs = set(user_outs)
    for s, new in update_pairs:
        node = new.owner
        if node is None or new in outs or s not in node.inputs:
            continue
        if len(fgraph.clients[new]) != 1 or node in late:
            continue
        if any(fgraph.clients[o] for o in node.outputs if o is not new):
            continue    # its other outputs are read by earlier nodes: it cannot go last
        if getattr(new.type, "dtype", None) is None or new.type.dtype != s.type.dtype:
            continue    # only tensors are written into the old value's buffer
        if node.op.branches(node) is not None:
            continue    # a lazy op (ifelse) runs as jumps and moves, never as a thunk
        late[node] = s
    return late


def _late_order(code, nodes, late, roots):
    """``nodes`` in cache order (``schedule.cache_order``), unless one of them
    reads memory that another one overwrites: then the order is kept, so
    that the reader still runs first and the writer stays in place."""
    written = {late[n]: n for n in nodes}
    for n in nodes:
        for v in n.inputs:
            if any(written.get(r, n) is not n for r in roots.get(v) or (v,)):
                return nodes
    return sch.cache_order(code, nodes)


def _precheck(late_nodes, late):
    from .late import restrict
    kept, check = restrict({n: late[n] for n in late_nodes})
    return [n for n in late_nodes if n in kept], check


def _with_copied_shared(spec):
    """A spec whose graph reads fresh copies of its shared variables."""
    from vmc.graph.traversal import ancestors as anc
    outs = [o.variable for o in spec.outputs]
    upd = collect_updates(spec.updates, outs, spec.no_default_updates)
    roots = outs + [u for _, u in upd] + [s for s, _ in upd]
    swap = {}
    for v in anc(roots):
        if isinstance(v, SharedVariable):
            new = type(v)(v.type, v.get_value(), name=v.name)
            swap[v] = new
    new_roots = clone_replace(roots, swap) if swap else roots
    n = len(outs)
    new_outs = new_roots[:n]
    new_upd = [(swap.get(s, s), u) for (s, _), u in zip(upd, new_roots[n:n + len(upd)])]
    return dataclasses.replace(spec, outputs=[Out(v, o.borrow) for v, o in
                                              zip(new_outs, spec.outputs)],
                               updates=new_upd, no_default_updates=True)

