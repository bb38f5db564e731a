"""How collectives run: non-blocking MPI calls (mpi4py, numpy buffers) behind
a start thunk and a wait thunk, registered in the CPU thunk registry.

A start thunk returns a ``Ticket``: a ``Message`` and this collective's part
of it. An allreduce at least ``BUCKET_BYTES`` long goes out at once as its own
message, from its own buffer (the scheduler keeps that buffer unwritten until
the wait, which reads it). Smaller ones of one chain (``vmc.distributed.ops``)
are packed into one pending message, sent when it would grow past
``BUCKET_BYTES``, at the chain's last start, or at the first wait that needs
it, whichever comes first: the same points on every rank, since every rank
runs the same program on the same shapes.

Each start thunk checks, on its first call, that every rank gives it the same
shape and dtype (``comm.agree``, a blocking handshake), and on later calls
that its own input kept that shape: a rank that differs raises, and with
``init``'s hook every rank is aborted, where a mismatched MPI call would hang.

Collectives that were not split (a program built without the scheduler) run
blocking, through the same start and wait.
"""
from __future__ import annotations

import os
import sys

import numpy as np
from vmc.thunks.registry import register

from . import job
from .ops import (Allgather, Allreduce, Broadcast, Collective, CollectiveStart,
                  CollectiveWait, Reduce, ReduceScatter)

BUCKET_BYTES = 1 << 20      # allreduces smaller than this share messages up to this size
_ALIGN = 64                 # bytes: each packed part starts on a cache line
_MPI_OPS = {"sum": "SUM", "mean": "SUM", "max": "MAX", "min": "MIN"}   # names in mpi4py.MPI


def _mpi_op(name):
    return getattr(job.mpi(), _MPI_OPS[name])


class Buffers:
    """A start thunk's own buffers, kept from call to call. MPI libraries register
    (map, pin) the memory they move, and a buffer new at every call pays for that at
    every call: here about 9 ms per 3 MB allreduce, against 3 ms for the transfer.
    A buffer is handed out again only when nothing else holds it (its reference
    count), so a result the caller kept is never overwritten."""
    __slots__ = ("arrays",)

    def __init__(self):
        self.arrays = {}

    def get(self, n, dtype):
        """A 1-d array of ``n`` elements of ``dtype`` that nothing else holds."""
        key = (n, dtype.str)
        a = self.arrays.get(key)
        # References: the dict, ``a`` and getrefcount's argument; more means a
        # result (or a view of it) is still alive somewhere, or a message in flight.
        if a is None or sys.getrefcount(a) > 3:
            a = self.arrays[key] = np.empty(n, dtype)
        return a


class Message:
    """One non-blocking collective: its parts, its request, its result buffer."""
    __slots__ = ("comm", "coll", "buffers", "parts", "offsets", "nbytes", "send_buf",
                 "recv", "request", "done", "finish")

    def __init__(self, comm, coll, buffers=None):
        self.comm, self.coll, self.buffers = comm, coll, buffers
        self.parts, self.offsets, self.nbytes = [], [], 0
        self.send_buf = self.recv = self.request = None
        self.done = False
        self.finish = None      # recv -> result, when the result is not a part of recv

    def add(self, x):
        """Pack the contiguous ``x`` (kept alive until sent); its index in the message."""
        self.offsets.append(self.nbytes)
        self.parts.append(x)
        self.nbytes += -(-x.nbytes // _ALIGN) * _ALIGN
        return len(self.parts) - 1

    @property
    def sent(self):
        return self.request is not None

    def send_packed(self):
        """Start the allreduce of the packed parts, in place in one of our buffers."""
        dtype = self.parts[0].dtype
        buf = self.buffers.get(self.nbytes // dtype.itemsize, dtype)
        for x, off in zip(self.parts, self.offsets):
            start = off // dtype.itemsize
            self.pack(buf[start:start + x.size], x.reshape(-1))
        self.parts = [(x.shape, x.size) for x in self.parts]
        self.start(buf)

    def pack(self, dst, x):
        """Copy ``x`` into the send buffer; a mean's parts divided by the ranks on
        the way (the sum of the quotients: no pass over the result at the wait)."""
        if isinstance(self.coll, Allreduce) and self.coll.op == "mean":
            np.divide(x, self.comm.Get_size(), out=dst)
        else:
            np.copyto(dst, x)

    def start(self, buf):
        self.send_buf = self.recv = buf
        self.request = self.comm.Iallreduce(job.mpi().IN_PLACE, buf, _mpi_op(self.coll.op))
        _in_flight.add(self)

    def wait(self):
        if not self.sent:
            self.send_packed()
        if not self.done:
            # Test and yield rather than MPI's busy-polling Wait: on a machine with
            # more runnable processes than cores, the rank this one waits for may
            # need this core to get there.
            test, yield_ = self.request.Test, os.sched_yield
            while not test():
                yield_()
            self.done = True
            _in_flight.discard(self)

    def part(self, index):
        """The result of part ``index`` (a view of the received buffer)."""
        self.wait()
        if self.finish is not None:
            return self.finish(self.recv)
        shape, n = self.parts[index]
        start = self.offsets[index] // self.recv.itemsize
        return self.recv[start:start + n].reshape(shape)


# Messages started and not yet waited for: MPI writes into their buffers until they
# complete, so they must outlive a call that failed between a start and its wait.
_in_flight = set()


class Ticket:
    """A start's result: ``message``, this collective's ``index`` in it, and the
    chain's message still open for packing (or None)."""
    __slots__ = ("message", "index", "open")

    def __init__(self, message, index, open_message):
        self.message, self.index, self.open = message, index, open_message


# -- start: one launcher per collective ----------------------------------------------
def _launch_allreduce(comm, coll, x, previous, buffers):
    open_msg = previous.open if previous is not None else None
    if open_msg is not None and open_msg.sent:
        open_msg = None
    if x.nbytes >= BUCKET_BYTES:
        msg = Message(comm, coll)
        msg.parts, msg.offsets = [(x.shape, x.size)], [0]
        buf = buffers.get(x.size, x.dtype)
        msg.pack(buf, x.reshape(-1))
        msg.start(buf)
        msg.finish = lambda recv, shape=x.shape: recv.reshape(shape)
        return Ticket(msg, 0, open_msg)
    if open_msg is not None and open_msg.nbytes + x.nbytes > BUCKET_BYTES:
        open_msg.send_packed()
        open_msg = None
    if open_msg is None:
        open_msg = Message(comm, coll, buffers)
    return Ticket(open_msg, open_msg.add(x), open_msg)


def _launch_allgather(comm, coll, x):
    n = comm.Get_size()
    msg = Message(comm, coll)
    msg.send_buf = x
    msg.recv = np.empty((n * x.shape[0],) + x.shape[1:], x.dtype) if coll.axis == 0 else \
        np.empty((n,) + x.shape, x.dtype)
    msg.request = comm.Iallgather(x, msg.recv)
    if coll.axis != 0:
        msg.finish = lambda recv: np.concatenate(list(recv), axis=coll.axis)
    else:
        msg.finish = lambda recv: recv
    return msg


def _launch_reduce_scatter(comm, coll, x):
    n, axis = comm.Get_size(), coll.axis
    if x.shape[axis] % n:
        raise ValueError(f"{coll.describe()}: dimension {axis} of the input, "
                         f"{x.shape[axis]}, does not split into {n} equal blocks")
    send = np.ascontiguousarray(np.moveaxis(x, axis, 0))
    msg = Message(comm, coll)
    msg.send_buf = send
    msg.recv = np.empty((send.shape[0] // n,) + send.shape[1:], x.dtype)
    msg.request = comm.Ireduce_scatter_block(send, msg.recv, _mpi_op("sum"))
    msg.finish = lambda recv: np.ascontiguousarray(np.moveaxis(recv, 0, axis))
    return msg


def _launch_broadcast(comm, coll, x):
    msg = Message(comm, coll)
    root = comm.Get_rank() == coll.root
    buf = x if root else np.empty_like(x)
    msg.send_buf = msg.recv = buf
    msg.request = comm.Ibcast(buf, root=coll.root)
    # The root's result is a new array: the op declares no view of its input.
    msg.finish = (lambda recv: recv.copy()) if root else (lambda recv: recv)
    return msg


def _launch_reduce(comm, coll, x):
    msg = Message(comm, coll)
    root = comm.Get_rank() == coll.root
    msg.send_buf = x
    msg.recv = np.empty_like(x) if root else None
    msg.request = comm.Ireduce(x, msg.recv, _mpi_op("sum"), root=coll.root)
    msg.finish = (lambda recv: recv) if root else (lambda recv: np.zeros_like(x))
    return msg


_LAUNCH = {Allgather: _launch_allgather, ReduceScatter: _launch_reduce_scatter,
           Broadcast: _launch_broadcast, Reduce: _launch_reduce}


def _check_root(coll, comm):
    root = getattr(coll, "root", None)
    if root is not None and not 0 <= root < comm.Get_size():
        raise ValueError(f"{coll.describe()}: root {root} is not a rank of this job "
                         f"of {comm.Get_size()} processes")


def make_start(coll, closes=True):
    """``start(x, previous ticket=None) -> Ticket`` for the collective op ``coll``."""
    comm = job.comm()
    _check_root(coll, comm)
    agreed = [None]         # (name, shape, dtype) once every rank agreed on it
    buffers = Buffers()
    name = coll.describe()

    def start(x, previous=None):
        x = np.asarray(x)
        if not x.flags.c_contiguous:     # (np.ascontiguousarray would make a 0-d array 1-d)
            x = x.copy(order="C")
        mine = (name, x.shape, x.dtype.str)
        if agreed[0] is None:
            agreed[0] = job.agree(name, mine)
        elif mine != agreed[0]:
            raise ValueError(f"{name}: the input is {x.dtype}{list(x.shape)} on this rank, "
                             f"{np.dtype(agreed[0][2])}{list(agreed[0][1])} when the ranks "
                             f"agreed on it at the first call; a collective's input must keep "
                             f"its shape from call to call (compile one function per shape)")
        if isinstance(coll, Allreduce):
            ticket = _launch_allreduce(comm, coll, x, previous, buffers)
            if closes and ticket.open is not None and not ticket.open.sent:
                ticket.open.send_packed()
            return ticket
        msg = _LAUNCH[type(coll)](comm, coll, x)
        _in_flight.add(msg)
        return Ticket(msg, 0, None)
    return start


def wait(ticket, x):
    return ticket.message.part(ticket.index)


@register(CollectiveStart)
def start_thunk(node, destroyable):
    return make_start(node.op.collective, node.op.closes)


@register(CollectiveWait)
def wait_thunk(node, destroyable):
    return wait


@register(Collective)
def blocking_thunk(node, destroyable):
    start = make_start(node.op)
    return lambda x: wait(start(x), x)
