"""The optimized-graph cache: a user graph that was optimized before, here or
in an earlier process, is not optimized again.

Rewriting dominates a warm compile (the C of its kernels is already cached):
about 0.1 s for a 1000-op chain. The key is a faithful serialization of the
graph ``vmc.function`` prepared (op parameters, types, names, constant
values, the user line of every node) together with the mode, every config
value, the compile call's line, and a digest of vmc's Python code. Equal keys
mean the same rewrites ran on the same graph, so the cached result is exactly
what optimizing would give. The value is the optimized graph in the same flat
form: the function's inputs and shared variables are referred to by position
and rebound to the caller's on load, so a hit updates the caller's shared
variables. Not cached: a graph holding a nested graph (a scan: its body is
cached on its own), an op from outside vmc, or more than MAX_CONSTANT_BYTES of
constants; a mode that enables a rewrite from outside vmc (their code is not
in the digest); a GPU device; ``config.print_rewrites`` or ``check_graph``.

Two levels: this process's memory, then ``config.compiledir`` (entries
``vmcg_graph_<key>.pkl``, written atomically), which ``python -m vmc cache``
counts and clears with the C entries.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from vmc.config import config
from vmc.graph import basic
from vmc.graph.basic import Apply, Constant, SharedVariable, Variable, without_test_values
from vmc.graph.fgraph import FunctionGraph
from vmc.graph.traversal import toposort
from vmc.opt import optimize
from vmc.thunks.registry import evaluate
from vmc.thunks.cgen import entries
from vmc.thunks.cgen.cache import PREFIX, compiledir, write_atomic

MEMORY_BYTES = 64 << 20        # optimized graphs kept in this process, newest last
MAX_CONSTANT_BYTES = 1 << 20   # a graph with more constant data is not cached
_memory: OrderedDict = OrderedDict()
_memory_bytes = 0
_lock = threading.Lock()
_code: list = []               # the digest of vmc's Python code, once per process
stats = {"hits": 0, "misses": 0, "uncached": 0}     # this process's lookups


class Uncacheable(Exception):
    """The graph cannot be written in the flat form (see the module docstring)."""


@without_test_values()      # the compiler's nodes are not the user's
def optimized_graph(inputs, outputs, n_user, update_shared, mode, timings):
    """The optimized FunctionGraph of the user's graph from ``inputs`` to
    ``outputs`` (the first ``n_user`` are the function's outputs, the rest the
    new values of ``update_shared``): rebuilt from the cache, or cloned and
    optimized (``vmc.opt.optimize``, folding constants with the CPU thunks). A
    hit clones nothing but the inputs."""
    t0 = time.perf_counter()
    order = toposort(outputs, blockers=inputs)
    key, shareds = _key(inputs, outputs, order, n_user, update_shared, mode)
    if key is not None:
        blob = _lookup(key)
        if blob is not None:
            try:
                fg = _rebuild(blob, [v.clone() for v in inputs], shareds)
                stats["hits"] += 1
                if timings is not None:    # the profile's compile steps say why no rewrites
                    timings["rewrite:graph cache hit"] = time.perf_counter() - t0
                return fg
            except Exception:     # noqa: BLE001 - a stale or damaged entry is a miss
                _forget(key)
    stats["misses" if key is not None else "uncached"] += 1
    fg = FunctionGraph(inputs, outputs, clone=True, order=order)
    fg.n_user_outputs = n_user
    fg.update_shared = list(update_shared)
    if timings is not None:
        timings["clone"] = time.perf_counter() - t0
    optimize(fg, mode, timings, evaluate=evaluate)
    if key is not None:
        with contextlib.suppress(Uncacheable):
            flat, _ = _flatten(fg.inputs, fg.outputs, fg.toposort(), n_user, fg.update_shared,
                               {v: k for k, v in enumerate(shareds)})
            _store(key, _dumps(flat))
    return fg


# -- the flat form -------------------------------------------------------------------------
#
# Records, one value each in order: the graph's inputs ("in", class, type, name), then
# as first read ("const", class, type, data, name), ("shared", position among the graph's
# shared variables, type, name), and node outputs, which ("node", op, input value
# numbers, ((class, type, name) per output), trace) adds. Then the output value numbers,
# the count of user outputs and the shared positions of the updated variables.

def _flatten(inputs, outputs, order, n_user, updated, position=None):
    """(the flat form of the graph ``order`` from ``inputs`` to ``outputs``, its
    shared variables in order of first read). With ``position`` (shared
    variable -> number), shared variables are numbered by it: the optimized
    graph refers to the user graph's numbering."""
    number, spos = {}, {}
    records, shareds = [], []
    const_bytes = 0
    for v in inputs:
        number[v] = len(number)
        records.append(("in", type(v), v.type, v.name))

    def ref(v):
        n = number.get(v)
        if n is None:
            if isinstance(v, Constant):
                nonlocal const_bytes
                const_bytes += v.data.nbytes
                if const_bytes > MAX_CONSTANT_BYTES:      # a key and an entry that big
                    raise Uncacheable("more constant data than MAX_CONSTANT_BYTES")
                records.append(("const", type(v), v.type, v.data, v.name))
            elif isinstance(v, SharedVariable):
                k = len(shareds) if position is None else position.get(v)
                if k is None:
                    raise Uncacheable(f"{v!r} is not read by the prepared graph")
                records.append(("shared", k, v.type, v.name))
                shareds.append(v)
                spos[v] = k
            else:
                raise Uncacheable(f"{v!r} is not an input of the graph")
            n = number[v] = len(number)
        return n

    for node in order:
        if not type(node.op).__module__.startswith("vmc."):
            raise Uncacheable(f"{node.op} is not a vmc op")
        ins = tuple([ref(v) for v in node.inputs])
        outs = []
        for o in node.outputs:
            number[o] = len(number)
            outs.append((type(o), o.type, o.name))
        records.append(("node", node.op, ins, tuple(outs), node.trace))
    outs = tuple([ref(v) for v in outputs])
    for v in updated:               # an updated variable the graph does not read
        ref(v)
    return (records, outs, n_user, tuple(spos[v] for v in updated)), shareds


class _Pickler(pickle.Pickler):
    # Called for every object that is not a plain container or scalar: a variable
    # or node reached through an op is a nested graph, which the flat form omits.
    def reducer_override(self, obj):
        if isinstance(obj, (Variable, Apply, FunctionGraph)):
            raise Uncacheable(f"{type(obj).__name__} inside an op")
        return NotImplemented


def _dumps(flat) -> bytes:
    buf = io.BytesIO()
    try:
        _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(flat)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        raise Uncacheable(str(e)) from None
    return buf.getvalue()


def _rebuild(blob: bytes, inputs, shareds) -> FunctionGraph:
    """The optimized graph of ``blob`` over the prepared graph's ``inputs`` and
    ``shareds`` (its shared variables in the flat form's order)."""
    records, outputs, n_user, updated = pickle.loads(blob)
    values = []
    n_in = 0
    for r in records:
        kind = r[0]
        if kind == "node":
            _, op, ins, outs, trace = r
            new = [cls(t, None, None, name) for cls, t, name in outs]
            Apply(op, [values[i] for i in ins], new, trace)
            values.extend(new)
        elif kind == "in":
            values.append(inputs[n_in])
            n_in += 1
        elif kind == "const":
            _, cls, t, data, name = r
            values.append(cls(t, data, name))
        else:
            values.append(shareds[r[1]])
    fg = FunctionGraph(inputs, [values[i] for i in outputs], clone=False)
    fg.n_user_outputs = n_user
    fg.update_shared = [shareds[k] for k in updated]
    return fg


# -- the key --------------------------------------------------------------------------------

def _key(inputs, outputs, order, n_user, updated, mode):
    """(the hex key of optimizing this graph under ``mode`` now, its shared
    variables in the flat form's order), or (None, None): do not cache."""
    from vmc.opt import get_mode
    from vmc.opt.rewriting import REGISTRY
    if not config.graph_cache or config.print_rewrites or config.check_graph:
        return None, None             # those ask for the passes to run
    if config.device != "cpu":
        return None, None             # GPU ops may hold device state
    mode = get_mode(mode)
    if mode.check_graph:
        return None, None             # DebugMode checks every pass: they must run
    if (mode.optimizer is None and not mode.include) or \
            REGISTRY.foreign_enabled(mode.include, mode.exclude):
        return None, None
    try:
        flat, shareds = _flatten(inputs, outputs, order, n_user, updated)
        graph = _dumps(flat)
    except Uncacheable:
        return None, None
    h = hashlib.sha256(_code_digest().encode())
    head = (mode.optimizer, mode.include, mode.exclude, config.items(),
            basic.current_fixed_trace())
    h.update(repr(head).encode() + b"\0")
    h.update(graph)
    return h.hexdigest(), shareds


def _code_digest() -> str:
    """vmc's Python code (what the rewrites are: each file's path, size and
    modification time, as Python's own bytecode cache checks), numpy's, scipy's
    and Python's versions."""
    if not _code:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        files = []
        for d, subdirs, names in os.walk(root):      # os.walk: a fifth of Path.rglob's time
            subdirs.sort()
            files += [os.path.join(d, n) for n in sorted(names) if n.endswith(".py")]
        import scipy                          # constant folding calls scipy.special
        versions = f"{np.__version__}\0{scipy.__version__}\0{sys.version}"
        h = hashlib.sha256(versions.encode() + b"\0")
        for p in files:
            st = os.stat(p)
            h.update(f"{p[len(root):]}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        _code.append(h.hexdigest())
    return _code[0]


# -- storage ---------------------------------------------------------------------------------

def _path(key: str) -> Path:
    return compiledir() / f"{PREFIX}graph_{key[:40]}.pkl"


def _lookup(key: str):
    with _lock:
        blob = _memory.get(key)
        if blob is not None:
            _memory.move_to_end(key)
            return blob
    path = _path(key)
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    entries.touch(path)
    _remember(key, blob)
    return blob


def _store(key: str, blob: bytes) -> None:
    _remember(key, blob)
    path = _path(key)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, blob)
        entries.note_write(path.parent, [path], entries.entry_of(path.name))


def _remember(key: str, blob: bytes) -> None:
    global _memory_bytes
    with _lock:
        old = _memory.pop(key, None)
        _memory[key] = blob
        _memory_bytes += len(blob) - (len(old) if old is not None else 0)
        while _memory_bytes > MEMORY_BYTES and len(_memory) > 1:
            _memory_bytes -= len(_memory.popitem(last=False)[1])


def _forget(key: str) -> None:
    global _memory_bytes
    with _lock:
        _memory_bytes -= len(_memory.pop(key, b""))
    with contextlib.suppress(OSError):
        _path(key).unlink()


def clear_memory() -> None:
    """Forget this process's optimized graphs (``python -m vmc cache clear`` does too)."""
    global _memory_bytes
    with _lock:
        _memory.clear()
        _memory_bytes = 0
