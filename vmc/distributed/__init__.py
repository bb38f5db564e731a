"""Data-parallel training over MPI: collectives as graph ops.

Run a script with ``mpiexec -n N python train.py``; in it::

    import vmc.distributed as dist
    dist.init()                                  # MPI.COMM_WORLD (idempotent)
    dist.broadcast_shared(params)                # every rank starts from rank 0's values
    grads = [dist.allreduce(g, "mean") for g in vmc.grad(cost, params)]

``allreduce(x, op)`` (op "sum", "mean", "max", "min"), ``allgather(x, axis)`` and
``broadcast(x, root)`` are graph ops: differentiable, usable anywhere in a graph.
In a compiled function each runs as a non-blocking start, placed as soon as its
input is ready, and a wait just before its result is read, so that communication
overlaps the rest of the computation (see ``vmc.distributed.ops``). Every rank must
run the same compiled functions in the same order, with the same shapes.

An uncaught exception on any rank (after ``init``) aborts every rank with that
rank's number and traceback, rather than leaving the others waiting.

What every rank must share, as with MPI itself: the compiled functions with
collectives, called in the same order; each collective's input shape and dtype, the
same on every rank (checked at the first call, with an error naming each rank's) and
from call to call (a change raises; compile one function per shape); the condition of
an ``ifelse`` whose branch holds a collective (not checked: ranks that take different
branches wait for each other forever). One communicator serves every collective of a
process; a function with collectives must not run in several threads at once.

Needs mpi4py and an MPI library: ``pip install 'vmc[mpi]'`` (mpi4py and the mpich
wheel), or Debian's ``python3-mpi4py`` with ``mpich`` or ``openmpi-bin``.
"""
from __future__ import annotations

try:
    import mpi4py  # noqa: F401  (its MPI module, which starts MPI, waits for init())
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError(
        "vmc.distributed needs mpi4py and an MPI library, which are not installed "
        f"({exc}): pip install 'vmc[mpi]' (that is: pip install mpi4py mpich), or on "
        "Debian apt-get install python3-mpi4py mpich") from exc

import numpy as np

from .job import abort, comm, init, rank, size
from .ops import (Allgather, Allreduce, Broadcast, Collective, CollectiveStart,
                  CollectiveWait, Reduce, ReduceScatter)
from . import thunks  # noqa: F401  (registers the thunks)

__all__ = ["init", "rank", "size", "comm", "abort", "allreduce", "allgather", "broadcast",
           "broadcast_shared", "Allreduce", "Allgather", "Broadcast", "Reduce",
           "ReduceScatter", "Collective", "CollectiveStart", "CollectiveWait"]


def allreduce(x, op="sum"):
    """The elementwise ``op`` ("sum", "mean", "max", "min") of ``x`` over the ranks."""
    init()
    return Allreduce(op)(x)


def allgather(x, axis=0):
    """Every rank's ``x``, concatenated along ``axis`` in rank order."""
    init()
    return Allgather(axis)(x)


def broadcast(x, root=0):
    """Rank ``root``'s ``x``, on every rank."""
    init()
    return Broadcast(root)(x)


def broadcast_shared(shared_variables, root=0):
    """Set every shared variable to rank ``root``'s value on every rank (blocking).
    Each rank must hold values of the same shapes and dtypes; the error names the
    first that differs."""
    c = init()
    if not 0 <= root < c.Get_size():
        raise ValueError(f"broadcast_shared: root {root} is not a rank of this job of "
                         f"{c.Get_size()} processes")
    shared_variables = list(shared_variables)
    values = [np.ascontiguousarray(s.get_value(borrow=True)) for s in shared_variables]
    mine = [(getattr(s, "name", None) or f"shared variable {k}", v.shape, v.dtype.str)
            for k, (s, v) in enumerate(zip(shared_variables, values))]
    theirs = c.bcast(mine, root=root)
    # Every rank learns every rank's verdict, so that all of them raise alike.
    problems = [p for p in c.allgather(_mismatch(mine, theirs, c.Get_rank(), root)) if p]
    if problems:
        raise ValueError("broadcast_shared: " + "; ".join(problems))
    for s, v in zip(shared_variables, values):
        buf = v if c.Get_rank() == root else np.empty_like(v)
        c.Bcast(buf, root=root)
        if c.Get_rank() != root:
            s.set_value(buf, borrow=True)


def _mismatch(mine, theirs, me, root):
    if len(theirs) != len(mine):
        return f"{len(mine)} shared variables on rank {me}, {len(theirs)} on the root, rank {root}"
    for (name, shape, dtype), (_, rshape, rdtype) in zip(mine, theirs):
        if (shape, dtype) != (rshape, rdtype):
            return (f"{name} is {np.dtype(dtype)}{list(shape)} on rank {me} but "
                    f"{np.dtype(rdtype)}{list(rshape)} on the root, rank {root}")
    return None
