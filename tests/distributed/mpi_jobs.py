"""Programs the MPI tests run on several ranks: ``mpiexec -n 2 python mpi_jobs.py JOB OUTDIR``.

Each rank writes what it got (and, where the oracle is numpy on data every rank can
make, what it expected) to ``OUTDIR/<job>.<rank>.npz``; ``test_mpi.py`` compares.
This module imports ``vmc.distributed`` (and so MPI) only inside the jobs, so that the
test process can use ``mlp`` and ``batches`` for its one-process oracle.
"""
from __future__ import annotations

import os
import sys

import numpy as np

SIZES, GLOBAL_BATCH, STEPS, LR = (6, 5, 3), 16, 5, 0.5


def batches(dtype="float64"):
    rng = np.random.default_rng(11)
    for _ in range(STEPS):
        yield (rng.standard_normal((GLOBAL_BATCH, SIZES[0])).astype(dtype),
               rng.integers(0, SIZES[-1], GLOBAL_BATCH).astype("int32"))


def mlp(grad_map=lambda gs: gs, dtype="float64"):
    """A tanh MLP with a softmax cross-entropy and SGD on its four parameters,
    the gradients passed through ``grad_map``: ``(step function, parameters)``."""
    import vmc
    import vmc.tensor as vt
    rng = np.random.default_rng(3)
    params = []
    for a, b in zip(SIZES[:-1], SIZES[1:]):
        params.append(vmc.shared(rng.standard_normal((a, b)).astype(dtype), name=f"W{a}"))
        params.append(vmc.shared((0.1 * rng.standard_normal(b)).astype(dtype), name=f"b{b}"))
    x, y = vt.matrix("x", dtype=dtype), vt.ivector("y")
    h = vt.tanh(vt.dot(x, params[0]) + params[1])
    p = vt.nnet.softmax(vt.dot(h, params[2]) + params[3])
    loss = -vt.mean(vt.log(p[vt.arange(y.shape[0]), y]))
    grads = grad_map(vmc.grad(loss, params))
    step = vmc.function([x, y], loss, updates=[(q, q - LR * g) for q, g in zip(params, grads)])
    return step, params


def _save(out, job, **arrays):
    import vmc.distributed as dist
    np.savez(os.path.join(out, f"{job}.{dist.rank()}.npz"), **arrays)


def job_sgd(out):
    """Data-parallel SGD: each rank takes its half of every batch; both VMs."""
    import vmc
    import vmc.distributed as dist
    dist.init()
    r, n = dist.rank(), dist.size()
    results = {}
    for linker in ("cvm", "py"):
        with vmc.config.change(linker=linker):
            step, params = mlp(lambda gs: [dist.allreduce(g, "mean") for g in gs])
        # Every rank starts from rank 0's values (rank 1's differ before this).
        if r != 0:
            for q in params:
                q.set_value(q.get_value() + 1.0)
        dist.broadcast_shared(params)
        for x, y in batches():
            half = len(x) // n
            step(x[r * half:(r + 1) * half], y[r * half:(r + 1) * half])
        for q in params:
            results[f"{linker}.{q.name}"] = q.get_value()
    _save(out, "sgd", **results)


def job_collectives(out):
    """allgather, broadcast, allreduce max/min/sum and their gradients, a collective
    in a lazy branch, and packed messages, against numpy on every rank's data."""
    import vmc
    import vmc.distributed as dist
    import vmc.tensor as vt
    from vmc.distributed import thunks
    from vmc.ifelse import ifelse
    dist.init()
    r, n = dist.rank(), dist.size()
    data = [np.random.default_rng(100 + k).standard_normal((4, 3)) for k in range(n)]
    mine = data[r]
    x = vt.matrix("x")
    got, want = {}, {}

    def check(name, expr, expected, inputs=(x,), args=(mine,)):
        got[name] = np.asarray(vmc.function(list(inputs), expr)(*args))
        want[name] = np.asarray(expected)

    check("allgather0", dist.allgather(x, 0), np.concatenate(data, 0))
    check("allgather1", dist.allgather(x, 1), np.concatenate(data, 1))
    check("broadcast1", dist.broadcast(x, root=n - 1), data[-1])
    check("max", dist.allreduce(x, "max"), np.max(data, 0))
    check("min", dist.allreduce(x, "min"), np.min(data, 0))
    check("sum", dist.allreduce(x, "sum"), np.sum(data, 0))
    check("mean", dist.allreduce(x, "mean"), np.mean(data, 0))
    # Gradients of sum_r sum(c_r * op(x)), the global objective, where c_r = r + 1.
    c = float(r + 1)
    cs = np.arange(1, n + 1, dtype=float)
    check("grad_sum", vmc.grad((c * dist.allreduce(x, "sum")).sum(), x),
          np.full((4, 3), cs.sum()))
    check("grad_gather", vmc.grad((c * dist.allgather(x, 1)).sum(), x),
          np.full((4, 3), cs.sum()))
    check("grad_bcast", vmc.grad((c * dist.broadcast(x, root=0)).sum(), x),
          np.full((4, 3), cs.sum() if r == 0 else 0.0))
    top = np.max(data, 0)
    check("grad_max", vmc.grad((c * dist.allreduce(x, "max")).sum(), x),
          np.where(mine == top, cs.sum(), 0.0))
    # Only the branch taken runs its collective; every rank takes the same one.
    flag = vt.iscalar("flag")
    lazy = ifelse(flag, dist.allreduce(x, "sum"), x * 2.0)
    check("ifelse_then", lazy, np.sum(data, 0), (flag, x), (1, mine))
    check("ifelse_else", lazy, mine * 2.0, (flag, x), (0, mine))
    # Many small allreduces and a big one: packed messages flushed as they fill.
    thunks.BUCKET_BYTES = 200
    vs = [vt.vector(f"v{k}") for k in range(7)]
    vals = [np.arange(5 * k + 1, dtype=float) * (r + 1) for k in range(7)]
    f = vmc.function(vs, [dist.allreduce(v * 1.0, "sum") for v in vs])
    for k, o in enumerate(f(*vals)):
        got[f"packed{k}"] = o
        want[f"packed{k}"] = np.arange(5 * k + 1, dtype=float) * cs.sum()
    # Inside a scan body, forward and backward (a backward scan of allreduces).
    v = vt.dvector("v")
    seq, _ = vmc.scan(lambda h: dist.allreduce(h * 2.0, "sum"), outputs_info=[v], n_steps=3)
    start = np.full(2, r + 1.0)
    check("scan", seq[-1], np.full(2, 8.0 * n * n * cs.sum()), (v,), (start,))
    check("grad_scan", vmc.grad(seq[-1].sum(), v), np.full(2, 8.0 * n ** 3), (v,), (start,))
    # Results the caller keeps are never overwritten by a later call (the thunks
    # reuse their MPI buffers only when nothing else holds them): a big allreduce
    # (its own message) and small ones (one packed message).
    big, small = vt.vector("big"), vt.vector("small")
    f = vmc.function([big, small], [dist.allreduce(big, "sum"), dist.allreduce(small, "max")])
    first = f(np.full(300, r + 1.0), np.full(3, r + 1.0))
    second = f(np.full(300, 10.0 * (r + 1)), np.full(3, 10.0 * (r + 1)))
    for k, (a, b) in enumerate(zip(first, second)):
        got[f"kept{k}"], want[f"kept{k}"] = a, np.full(a.shape, cs.sum() if k == 0 else n)
        got[f"later{k}"], want[f"later{k}"] = b, np.full(b.shape, 10 * (cs.sum() if k == 0
                                                                          else n))
    _save(out, "collectives", **{f"got.{k}": v for k, v in got.items()},
          **{f"want.{k}": v for k, v in want.items()})


def job_fail(out):
    """Rank 1 raises while rank 0 waits for an allreduce: both must end."""
    import vmc
    import vmc.distributed as dist
    import vmc.tensor as vt
    dist.init()
    x = vt.vector("x")
    f = vmc.function([x], dist.allreduce(x, "sum"))
    f(np.ones(3))               # the handshake and a first message, on both ranks
    if dist.rank() == 1:
        raise RuntimeError("rank one broke on purpose")
    f(np.ones(3))               # rank 0 waits in the allreduce's wait
    f(np.ones(3))


def job_shapes(out):
    """The ranks give an allreduce inputs of different shapes."""
    import vmc
    import vmc.distributed as dist
    import vmc.tensor as vt
    dist.init()
    x = vt.matrix("x")
    f = vmc.function([x], dist.allreduce(x, "sum"))
    f(np.ones((3 + dist.rank(), 2)))


def job_threads(out):
    """What each rank's config.threads and BLAS threads are after init."""
    import vmc
    import vmc.distributed as dist
    import vmc.tensor as vt
    from threadpoolctl import threadpool_info
    from vmc.config import _default_threads
    dist.init()
    a = vt.dmatrix("a")
    f = vmc.function([a], vt.dot(a, a))       # loads the BLAS thunks and the pool
    np.testing.assert_allclose(f(np.eye(3) * 2), np.eye(3) * 4)
    blas = sorted({m["num_threads"] for m in threadpool_info() if m["user_api"] == "blas"})
    _save(out, "threads", threads=vmc.config.threads, cpus=_default_threads(),
          blas=np.array(blas))


if __name__ == "__main__":
    globals()["job_" + sys.argv[1]](sys.argv[2])
