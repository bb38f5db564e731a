"""The job: its communicator, this process's rank, and what a failure does.

``init`` duplicates the communicator it is given (``MPI.COMM_WORLD`` by
default), so that vmc's collectives never match messages of the user's own
MPI calls, and installs a ``sys.excepthook`` that turns an uncaught exception
on any rank into ``MPI_Abort`` after printing the rank and the traceback: the
other ranks, which may be waiting in a collective, are ended by the launcher
instead of hanging.
"""
from __future__ import annotations

import sys
import traceback

import numpy as np

_job = {"comm": None, "given": None, "hook": None}


def mpi():
    """mpi4py's ``MPI`` module. Importing it starts MPI (``MPI_Init``), so it is
    imported by ``init`` only, never by ``import vmc.distributed``."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as exc:
        raise ImportError(f"vmc.distributed: mpi4py cannot load an MPI library ({exc}): "
                          f"pip install 'vmc[mpi]' (mpi4py and mpich), or on Debian "
                          f"apt-get install mpich") from exc
    return MPI


def init(comm=None):
    """Start using ``comm`` (default ``MPI.COMM_WORLD``) for every collective;
    returns vmc's communicator (a duplicate of it). Calling it again does nothing,
    unless it names another communicator: that is an error."""
    current = _job["comm"]
    if current is not None:
        if comm is not None and comm != _job["given"]:
            raise ValueError("vmc.distributed.init: already initialized with another "
                             "communicator; call init once per process")
        return current
    MPI = mpi()
    given = MPI.COMM_WORLD if comm is None else comm
    if not isinstance(given, MPI.Intracomm):
        raise TypeError(f"vmc.distributed.init: comm must be an mpi4py intracommunicator "
                        f"(MPI.COMM_WORLD or one split from it), got {type(given).__name__}")
    _job["given"], _job["comm"] = given, given.Dup()
    if given.Get_size() > 1 and _job["hook"] is None:
        _job["hook"] = sys.excepthook
        sys.excepthook = _abort_every_rank
    _share_cpus(_job["comm"], MPI)
    return _job["comm"]


def _share_cpus(c, MPI):
    """Unless the user set ``config.threads``, the ranks on one machine that may run
    on the same CPUs share them: each takes its share of those it may use (at least
    one), for its thread pool and its BLAS alike. Each rank taking every CPU, the
    default of one process, runs ranks x CPUs threads on the CPUs (OpenBLAS's
    spinning threads then take turns at every step). Ranks the launcher bound to
    CPUs of their own keep them all."""
    from vmc.config import allowed_cpus, config
    if config.given("threads"):
        return
    local = c.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        mine = allowed_cpus()
        sharing = sum(1 for other in local.allgather(mine) if other & mine)
    finally:
        local.Free()
    if sharing > 1:
        config.threads = max(1, len(mine) // sharing)


def comm():
    """vmc's communicator (``init()`` first if needed)."""
    return _job["comm"] or init()


def rank() -> int:
    """This process's rank in vmc's communicator."""
    return comm().Get_rank()


def size() -> int:
    """The number of processes in vmc's communicator."""
    return comm().Get_size()


def abort(message, code=1):
    """Print ``message`` with this rank and end every rank of the job."""
    c = comm()
    sys.stderr.write(f"vmc.distributed: rank {c.Get_rank()} of {c.Get_size()} failed; "
                     f"aborting every rank.\n{message}")
    sys.stderr.flush()
    mpi().COMM_WORLD.Abort(code)


def _abort_every_rank(exc_type, exc, tb):
    abort("".join(traceback.format_exception(exc_type, exc, tb)))


def agree(what, local):
    """Every rank's ``local`` (a shape and dtype); raises, on every rank alike, an
    error that names them when they differ. Blocking: a one-time handshake."""
    everyone = comm().allgather(local)
    if all(v == everyone[0] for v in everyone):
        return everyone[0]
    listed = ", ".join(f"rank {r}: {_show(v)}" for r, v in enumerate(everyone))
    raise ValueError(f"{what}: the ranks disagree on the input: {listed}; every rank must "
                     f"give the same shape and dtype")


def _show(v):
    op, shape, dtype = v
    return f"{op} of {np.dtype(dtype).name}{list(shape)}"
