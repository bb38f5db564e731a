"""FusedElemwise on the CPU without a compiler: the scalar DAG evaluated with
numpy ufuncs that reuse their temporaries (the generated C is ``elemwise_c``)."""
from __future__ import annotations

import numpy as np

from vmc.tensor.fused import FusedElemwise
from vmc.tensor.math import REDUCTIONS

from .broadcast import broadcast_shape, fixed_dims, shape_of
from .registry import register


_OUT_UFUNC = {"sqr": np.square}   # table entries that are not ufuncs but have one


def _plan(op, node):
    """Per step: (value index, impl, argument indices, dtype, use out=, values
    dying after it)."""
    n_in, n_c = op.n_in, len(op.consts)
    last = {}
    for j, (_, args, _) in enumerate(op.ops):
        for a in args:
            last[a] = j
    keep = set(op.outputs)
    steps = []
    for j, (sop, args, dtype) in enumerate(op.ops):
        impl = _OUT_UFUNC.get(sop.name, sop.impl)
        ufunc = isinstance(impl, np.ufunc) and impl.nout == 1 and impl.nin == len(args)
        # inputs first: a result goes into a buffer the scheduler gave up (an
        # update's old value) before it takes one of the kernel's own temporaries
        dying = [a for a in sorted(set(args), key=lambda a: (a >= n_in, a))
                 if last[a] == j and a not in keep and not n_in <= a < n_in + n_c]
        steps.append((n_in + n_c + j, impl, args, np.dtype(dtype), ufunc, dying))
    return steps


@register(FusedElemwise)
def fused_elemwise_thunk(node, destroyable):
    """Evaluate the DAG with numpy; each ufunc writes into a buffer that dies
    at that very step (an argument of it: numpy handles the overlap) or
    earlier (a dead temporary, or an input the scheduler gave up), so
    ``w - lr * g`` with a dying ``w`` allocates nothing."""
    op = node.op
    steps = _plan(op, node)
    consts = op.const_values()
    n_in = op.n_in
    loop_bcast = tuple(all(v.type.shape[d] == 1 for v in node.inputs)
                       for d in range(node.inputs[0].type.ndim))
    reusable = {i for i in destroyable if node.inputs[i].type.broadcastable == loop_bcast}
    reusable |= set(range(n_in + len(consts), n_in + len(consts) + len(steps)))
    fixed = [fixed_dims(v.type.shape) for v in node.inputs]
    outs = op.outputs
    reduce = [None if r is None else (REDUCTIONS[r[0]].impl, r[1], np.dtype(r[2]))
              for r in op.reduce]
    single = len(outs) == 1

    def buffer(v, dtype, loop):
        return (type(v) is np.ndarray and v.dtype == dtype and v.shape == loop
                and v.ndim and v.flags.writeable)

    def thunk(*args):
        loop = (broadcast_shape(node.op, [shape_of(a) for a in args], fixed) if len(args) > 1
                else np.shape(args[0]))
        vals = list(args) + consts + [None] * len(steps)
        pool = {}
        for k, impl, a_idx, dtype, ufunc, dying in steps:
            a = [vals[i] for i in a_idx]
            out = None
            if ufunc:
                for i in dying:
                    if i in reusable and buffer(vals[i], dtype, loop):
                        out = vals[i]
                        break
                else:
                    free = pool.get(dtype)
                    out = free.pop() if free else None
            if out is not None:
                r = impl(*a, out=out)
            else:
                r = impl(*a)
                if r.dtype != dtype:
                    r = r.astype(dtype)
            vals[k] = r
            for i in dying:
                v = vals[i]
                vals[i] = None
                if v is not out and i in reusable and type(v) is np.ndarray and v.ndim \
                        and v.flags.writeable and v.shape == loop:
                    pool.setdefault(v.dtype, []).append(v)
        results = []
        for k, red in zip(outs, reduce):
            v = vals[k]
            if red is not None:
                v = np.asarray(red[0](v, axis=red[1]), dtype=red[2])
            elif not isinstance(v, np.ndarray):
                v = np.asarray(v)
            results.append(v)
        return results[0] if single else tuple(results)
    return thunk


