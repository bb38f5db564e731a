"""What a call takes and hands back: the caller's arrays stay the caller's own.

- ``guard_outputs``: an output that would share memory with an argument, an
  input's stored default, another output, a shared value or a constant reads
  an ``OutputCopy`` of it instead (unless the user asked for ``Out(y, borrow=True)``), so
  ``f(a) is a`` is False and writing into one result changes nothing else.
- ``arrays_for_0d_outputs``: numpy thunks return numpy scalars for 0-d
  results (``np.prod``, a sum of int8, ``np.all``); the producers of 0-d
  outputs are wrapped so that every result is an ndarray, on both VMs.
- ``with_mutable_inputs``: a function whose ``In(x, mutable=True)`` input may
  be overwritten copies that argument first when it shares memory with
  another argument, a shared value or its own default, which the function
  reads after (or instead of) overwriting it.
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Constant, SharedVariable
from vmc.graph.type import TensorType

from vmc.program import MOVE, THUNK, CThunk


def guard_outputs(fgraph, roots, borrow):
    """Make each user output ``k`` of ``fgraph`` that may share memory with
    storage (always), or with an input or an earlier output (unless
    ``borrow[k]``), read an ``OutputCopy`` of itself. ``roots`` is
    ``schedule.alias_roots`` of the graph."""
    from vmc.tensor.elemwise import OutputCopy
    inputs = set(fgraph.inputs)
    earlier = set()         # the buffers earlier outputs hand back
    for k in range(fgraph.n_user_outputs):
        o = fgraph.outputs[k]
        rs = roots.get(o) or (o,)
        storage = any(isinstance(r, (Constant, SharedVariable)) for r in rs)
        shared = any(r in inputs or r in earlier for r in rs)
        if isinstance(o.type, TensorType) and (storage or (shared and not borrow[k])):
            fgraph.set_output(k, OutputCopy()(o))
        else:
            earlier.update(rs)


def arrays_for_0d_outputs(code, thunk_index, thunks, outputs):
    """Wrap (in ``thunks``) each Python thunk that writes one of the 0-d
    tensor ``outputs``, directly or through an ifelse's MOVE, so that it
    returns ndarrays. C thunks always make arrays."""
    want = {v for v in outputs if isinstance(v.type, TensorType) and v.type.ndim == 0}
    for pc in range(len(code) - 1, -1, -1):
        ins = code[pc]
        if ins.kind == MOVE and ins.outs[0] in want:
            want.add(ins.ins[0])
        elif ins.kind == THUNK and any(o in want for o in ins.outs):
            i = thunk_index[pc]
            if not isinstance(thunks[i], CThunk):
                thunks[i] = _returning_arrays(thunks[i], len(ins.outs))


def _returning_arrays(thunk, n_out):
    if n_out == 1:
        def wrapped(*args):
            r = thunk(*args)
            return r if type(r) is np.ndarray else np.asarray(r)
    else:
        def wrapped(*args):
            return tuple(r if type(r) is np.ndarray or r is None else np.asarray(r)
                         for r in thunk(*args))
    profiling = getattr(thunk, "set_profiling", None)      # scan bodies profile their steps
    if profiling is not None:
        wrapped.set_profiling = profiling
    return wrapped


class MutableInputs:
    """Mixed into a Function class in front of its VM: the call copies each
    mutable argument that shares memory with something the function reads."""

    def __call__(self, *args, **kwargs):
        if kwargs or len(args) != len(self.inputs):
            args = self._bind(args, kwargs)
        return super().__call__(*_unaliased(self, list(args)))


def _unaliased(f, args):
    shared = [cell[0] for cell in f.program.shared_cells]
    for k, spec in enumerate(f.inputs):
        a = args[k]
        if not spec.mutable or type(a) is not np.ndarray:
            continue
        others = [b for j, b in enumerate(args) if j != k] + shared
        if a is spec.value or any(type(b) is np.ndarray and np.may_share_memory(a, b)
                                  for b in others):
            args[k] = a.copy()
    return args


_variants: dict = {}


def with_mutable_inputs(cls):
    """``cls`` with ``MutableInputs`` in front (one class per ``cls``)."""
    v = _variants.get(cls)
    if v is None:
        v = _variants[cls] = type(cls.__name__, (MutableInputs, cls), {})
    return v
