"""One run of bench group J: an MLP training step timed on every rank of an MPI job
(or in one plain process), printed by rank 0 as one JSON line.

    mpiexec -n 2 python -m bench.mpi_step --impl vmc --dtype float64 --batch 128
    python -m bench.mpi_step --impl vmc-1 --dtype float64 --batch 128

Impls: ``vmc-1`` and ``torch-1`` (one process, no collectives), ``vmc`` (gradients and
loss through ``vmc.distributed.allreduce(.., "mean")``: starts placed as soon as each
gradient is ready, waits before the updates), ``vmc-adjacent`` (the same graph with the
start/wait placement turned off: each wait right after its start, nothing overlaps) and
``torch`` (``DistributedDataParallel`` over gloo, on loopback). Rank ``r`` takes rows
``r*batch:(r+1)*batch`` of a global batch of ``ranks*batch``.

Timing: 3 warm-up steps, then ``--repeats`` repeats of ``--steps`` steps, every rank
starting each repeat at a barrier; a repeat's time per step is the slowest rank's.
``check`` is ``[global loss, *parameters]`` after one step from the initial values, on
the global batch (one process takes all of it), for the numpy oracle. For ``vmc``,
``hidden`` is the share of the collectives' time that the start/wait placement hides:
one minus the time per step in the start and wait instructions (from the profiler)
over the same with the placement off (``hidden_share``).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from bench.models import mlp_data

SIZES = [784, 500, 10]


def _rank_size(impl):
    if impl.endswith("-1"):
        return 0, 1, None
    from mpi4py import MPI
    c = MPI.COMM_WORLD
    return c.Get_rank(), c.Get_size(), c


def vmc_step(data, r, n, impl, profile=False):
    """``(f(X, y) -> global loss, shared parameters)``."""
    import vmc
    import vmc.tensor as T
    X = T.matrix("X", dtype=data.dtype)
    y = T.lvector("y")
    shared = [vmc.shared(p.copy(), name=f"p{i}") for i, p in enumerate(data.params)]
    h = T.tanh(T.dot(X, shared[0]) + shared[1])
    logp = T.log(T.softmax(T.dot(h, shared[2]) + shared[3]))
    loss = -T.mean(logp[T.arange(y.shape[0]), y])
    grads = vmc.grad(loss, shared)
    if impl != "vmc-1":
        import vmc.distributed as dist
        dist.init()
        grads = [dist.allreduce(g, "mean") for g in grads]
        loss = dist.allreduce(loss, "mean")
    lr = np.asarray(data.lr, dtype=data.dtype)
    updates = [(s, s - lr * g) for s, g in zip(shared, grads)]
    if impl == "vmc-adjacent":
        from vmc.distributed import CollectiveStart, CollectiveWait
        saved = CollectiveStart.placement, CollectiveWait.placement
        CollectiveStart.placement = CollectiveWait.placement = None
        try:
            return vmc.function([X, y], loss, updates=updates, profile=profile), shared
        finally:
            CollectiveStart.placement, CollectiveWait.placement = saved
    return vmc.function([X, y], loss, updates=updates, profile=profile), shared


def torch_step(data, r, n, impl):
    import torch
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.Tanh(),
                                torch.nn.Linear(SIZES[1], SIZES[2]))
    dt = getattr(torch, data.dtype)
    model = model.to(dt)
    with torch.no_grad():
        for layer, (W, b) in zip((model[0], model[2]), (data.params[:2], data.params[2:])):
            layer.weight.copy_(torch.from_numpy(W.T.copy()))
            layer.bias.copy_(torch.from_numpy(b))
    net = model
    if impl == "torch":
        net = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(net.parameters(), lr=data.lr)

    def step(X, y):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
        loss = loss.detach()
        if impl == "torch":
            torch.distributed.all_reduce(loss)
            loss /= n
        return loss

    def params():
        return [model[0].weight.detach().numpy().T, model[0].bias.detach().numpy(),
                model[2].weight.detach().numpy().T, model[2].bias.detach().numpy()]
    return step, params


def build(impl, data, r, n, port):
    """``(step(X, y) -> loss, read the parameters, convert the batch)``."""
    if impl.startswith("torch"):
        import torch
        if impl == "torch":
            import torch.distributed as tdist
            tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                                     rank=r, world_size=n)
        step, params = torch_step(data, r, n, impl)
        return step, params, lambda X, y: (torch.from_numpy(X), torch.from_numpy(y))
    f, shared = vmc_step(data, r, n, impl)
    return f, lambda: [s.get_value() for s in shared], lambda X, y: (X, y)


def time_steps(step, args, comm, steps, repeats):
    for _ in range(3):
        step(*args)
    times = []
    for _ in range(repeats):
        if comm is not None:
            comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            step(*args)
        times.append((time.perf_counter() - t0) / steps)
    return times


def hidden_share(data, r, n, args, comm, steps):
    """``{hidden, exposed_s, adjacent_s, alone_s}`` for impl ``vmc``: the time per step
    in the collectives' start and wait instructions (from the profiler) with the
    placement (``exposed_s``) and without it (``adjacent_s``: each wait right after its
    start, so all of their time shows), timed in alternation; ``hidden`` is the share
    of the latter that the placement hides. ``alone_s``: the same collectives on the
    same shapes, with nothing else running, per call."""
    import vmc
    import vmc.distributed as dist
    import vmc.tensor as T
    fns = {impl: vmc_step(data, r, n, impl, profile=True)[0] for impl in ("vmc", "vmc-adjacent")}
    spent = {impl: [] for impl in fns}
    for _ in range(3):
        for impl, f in fns.items():
            for _ in range(2):
                f(*args)
            f.profile.reset()
            comm.Barrier()
            for _ in range(steps):
                f(*args)
            by = f.profile.by_key("op_class")
            ns = sum(by.get(k, [0])[0] for k in ("CollectiveStart", "CollectiveWait"))
            spent[impl].append(ns * 1e-9 / steps)
    exposed, adjacent = (float(np.median(spent[k])) for k in ("vmc", "vmc-adjacent"))
    shapes = [p.shape for p in data.params]
    ins = [T.tensor(dtype=data.dtype, shape=(None,) * len(s)) for s in shapes]
    scalar = T.scalar(dtype=data.dtype)
    g = vmc.function([scalar] + ins, [dist.allreduce(v, "mean") for v in [scalar] + ins])
    vals = [np.asarray(1.0, data.dtype)] + [np.ones(s, data.dtype) for s in shapes]
    alone = float(np.median(time_steps(lambda *a: g(*a), vals, comm, steps, 3)))
    return {"hidden": 1.0 - exposed / adjacent, "exposed_s": exposed, "adjacent_s": adjacent,
            "alone_s": alone}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", required=True)
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--port", type=int, default=29517)
    ap.add_argument("--ranks-for-check", type=int, default=2)
    a = ap.parse_args(argv)
    r, n, comm = _rank_size(a.impl)
    load0 = os.getloadavg()[0]
    # The check: one step on the global batch of the multi-rank run, from the start.
    ranks = max(n, a.ranks_for_check) if n == 1 else n
    data = mlp_data(SIZES, a.batch * ranks, a.dtype)
    lo, hi = (0, a.batch * ranks) if n == 1 else (r * a.batch, (r + 1) * a.batch)
    step, params, convert = build(a.impl, data, r, n, a.port)
    batch = convert(data.X[lo:hi], data.y[lo:hi])
    loss = step(*batch)
    check = [np.asarray(loss)] + [np.array(p) for p in params()]
    # Timing on this rank's share of the global batch (the first ``batch`` rows alone).
    if n == 1:
        batch = convert(data.X[:a.batch], data.y[:a.batch])
    times = time_steps(step, batch, comm, a.steps, a.repeats)
    out = {"times": times, "load": [load0, os.getloadavg()[0]], "ranks": n}
    if a.impl == "vmc":
        out.update(hidden_share(data, r, n, batch, comm, a.steps))
    if comm is not None:
        everyone = comm.gather(out, root=0)
        if r != 0:
            return
        out["times"] = [max(t) for t in zip(*(e["times"] for e in everyone))]
        if a.impl == "vmc":
            for k in ("hidden", "exposed_s", "adjacent_s", "alone_s"):
                out[k] = float(np.mean([e[k] for e in everyone]))
    out["check"] = [c.tolist() for c in check]
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
