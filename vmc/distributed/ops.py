"""Collectives as graph ops, and the start/wait pair each one runs as.

The ops live here rather than in ``vmc/tensor`` because they only mean
something inside an MPI job (their shape rules read the job's size) and are
built only by code that imported ``vmc.distributed``; like ``vmc.ifelse`` and
``vmc.scan``, the room that owns the feature owns its ops.

Every collective runs on the communicator given to ``vmc.distributed.init``.
The global objective of a data-parallel job is the sum of every rank's cost,
which fixes the gradients: the pullback of ``allreduce(x, "sum")`` is the
allreduce-sum of the cotangents, that of ``allgather`` a reduce-scatter, that
of ``broadcast`` a reduce to the root (and each of those back again).

Before a function runs, the scheduler (``vmc.compile.schedule.split_async``)
asks ``Collective.split_start_wait`` to replace each collective by two nodes: a
``CollectiveStart`` that launches the non-blocking operation and yields a
``Ticket``, placed as soon as its input is ready, and a ``CollectiveWait``
that reads the ticket and the input (so the input's buffer stays untouched
until then) and yields the result, placed just before its first reader.
Independent allreduces of one block, reduce op and dtype are chained
(``start_k`` also reads ``ticket_{k-1}``) so that their thunks can pack the
small ones into one message (``vmc.distributed.thunks``).
"""
from __future__ import annotations

from vmc.graph.basic import Apply, Op, Variable
from vmc.graph.traversal import ancestors
from vmc.graph.type import TensorType, Type
from vmc.tensor.basic import as_tensor_variable
from vmc.tensor.elemwise import cast, eq

REDUCE_OPS = ("sum", "mean", "max", "min")


def _size():
    from .job import size
    return size()


class Collective(Op):
    """Base of the collectives: never folded at compile time (it communicates)."""
    nondeterministic = True

    def out_type(self, x):
        return x.type

    def make_node(self, x):
        x = as_tensor_variable(x)
        self.check_input(x)
        return Apply(self, [x], [self.out_type(x).make_variable()])

    def check_input(self, x):
        pass

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def describe(self):
        """How messages name this op: ``allreduce(sum)``."""
        return str(self)

    @staticmethod
    def split_start_wait(nodes, block_of):
        """Replacement pairs ``(old output, new output)`` that turn every node of
        ``nodes`` (collectives, in topological order) into a start and a wait;
        ``block_of(node)`` tells which nodes may share a chain (the same lazy block)."""
        return _split(nodes, block_of)


class Allreduce(Collective):
    """``allreduce(x, op)``: the elementwise sum, mean, max or min of ``x`` over the ranks."""
    __props__ = ("op",)

    def __init__(self, op="sum"):
        if op not in REDUCE_OPS:
            raise ValueError(f"allreduce: op must be one of {REDUCE_OPS}, got {op!r}")
        self.op = op

    def check_input(self, x):
        if self.op == "mean" and not x.type.dtype.startswith(("float", "complex")):
            raise TypeError(f"allreduce: op='mean' needs a float tensor, got {x.type}; "
                            f"cast it, or use op='sum'")

    def describe(self):
        return f"allreduce({self.op})"

    def pullback(self, inputs, outputs, grads):
        (x,), (y,), (g,) = inputs, outputs, grads
        if self.op in ("sum", "mean"):
            return [Allreduce(self.op)(g)]
        # The ranks holding the extreme value get the summed cotangent.
        return [Allreduce("sum")(g) * cast(eq(x, y), g.type.dtype)]


class Allgather(Collective):
    """``allgather(x, axis)``: the ranks' ``x`` concatenated along ``axis``, in rank order."""
    __props__ = ("axis",)

    def __init__(self, axis=0):
        self.axis = int(axis)

    def check_input(self, x):
        if not 0 <= self.axis < x.type.ndim:
            raise ValueError(f"{self.describe()}: axis {self.axis} is out of range for "
                             f"{x.type} (a scalar cannot be gathered: reshape it to (1,))")

    def out_type(self, x):
        shape = list(x.type.shape)
        n = shape[self.axis]
        shape[self.axis] = None if n is None else n * _size()
        return TensorType(x.type.dtype, tuple(shape))

    def describe(self):
        return f"allgather(axis={self.axis})"

    def infer_shape(self, node, shapes):
        s = list(shapes[0])
        s[self.axis] = s[self.axis] * _size()
        return [tuple(s)]

    def pullback(self, inputs, outputs, grads):
        return [ReduceScatter(self.axis)(grads[0])]


class ReduceScatter(Collective):
    """The sum over the ranks of ``x``, of which rank ``r`` keeps the ``r``-th of
    ``size`` equal blocks along ``axis`` (the pullback of ``allgather``)."""
    __props__ = ("axis",)

    def __init__(self, axis=0):
        self.axis = int(axis)

    def check_input(self, x):
        Allgather.check_input(self, x)

    def out_type(self, x):
        shape = list(x.type.shape)
        n = shape[self.axis]
        shape[self.axis] = None if n is None else n // _size()
        return TensorType(x.type.dtype, tuple(shape))

    def describe(self):
        return f"reduce_scatter(axis={self.axis})"

    def infer_shape(self, node, shapes):
        s = list(shapes[0])
        s[self.axis] = s[self.axis] // _size()
        return [tuple(s)]

    def pullback(self, inputs, outputs, grads):
        return [Allgather(self.axis)(grads[0])]


class Broadcast(Collective):
    """``broadcast(x, root)``: the root's ``x`` on every rank."""
    __props__ = ("root",)

    def __init__(self, root=0):
        self.root = int(root)

    def describe(self):
        return f"broadcast(root={self.root})"

    def pullback(self, inputs, outputs, grads):
        return [Reduce(self.root)(grads[0])]


class Reduce(Collective):
    """The sum over the ranks of ``x`` on the root, zeros elsewhere (the pullback of
    ``broadcast``)."""
    __props__ = ("root",)

    def __init__(self, root=0):
        self.root = int(root)

    def describe(self):
        return f"reduce(sum, root={self.root})"

    def pullback(self, inputs, outputs, grads):
        return [Broadcast(self.root)(grads[0])]


# -- the start/wait pair -----------------------------------------------------------
class TicketType(Type):
    """The type of a collective in flight (a ``vmc.distributed.thunks.Ticket``)."""
    __slots__ = ()

    def filter(self, value, name="input", allow_downcast=False):
        raise TypeError(f"{name}: a collective's ticket is made inside a function, "
                        f"never passed in")

    def __eq__(self, other):
        return type(other) is TicketType

    def __hash__(self):
        return hash(TicketType)

    def __reduce__(self):
        return (TicketType, ())

    def __repr__(self):
        return "TicketType()"

    __str__ = __repr__


class TicketVariable(Variable):
    __slots__ = ()


TicketType.variable_class = TicketVariable


class CollectiveStart(Op):
    """Launches ``collective`` on ``x`` without waiting; inputs ``(x,)`` or, in a
    chain of allreduces, ``(x, previous ticket)``. ``closes``: the last of its
    chain, which sends what the chain still holds back."""
    __props__ = ("collective", "closes")
    nondeterministic = True
    placement = "asap"      # vmc.compile.schedule: right after its inputs are ready

    def __init__(self, collective, closes=True):
        self.collective = collective
        self.closes = bool(closes)

    def make_node(self, x, *previous):
        return Apply(self, [x, *previous], [TicketType().make_variable()])

    def __str__(self):
        return f"{self.collective.describe()}.start"


class CollectiveWait(Op):
    """Waits for the ticket's collective; inputs ``(ticket, x)``: reading ``x``
    keeps its buffer alive and unwritten until the message is done."""
    __props__ = ("collective",)
    nondeterministic = True
    placement = "alap"      # vmc.compile.schedule: just before its first reader

    def __init__(self, collective):
        self.collective = collective

    def make_node(self, ticket, x):
        return Apply(self, [ticket, x], [self.collective.out_type(x).make_variable()])

    def infer_shape(self, node, shapes):
        return self.collective.infer_shape(node, shapes[1:])

    def __str__(self):
        return f"{self.collective.describe()}.wait"


def _split(nodes, block_of):
    chains, open_chain = [], {}     # chain key -> (its nodes, their outputs)
    for node in nodes:
        key = _chain_key(node, block_of)
        chain = open_chain.get(key) if key is not None else None
        if chain is None or not chain[1].isdisjoint(ancestors(node.inputs)):
            # a new chain: the first of its key, or x needs an earlier member's result
            chain = ([], set())
            chains.append(chain[0])
            if key is not None:
                open_chain[key] = chain
        chain[0].append(node)
        chain[1].add(node.outputs[0])
    pairs = []
    for chain in chains:
        ticket = None
        for i, node in enumerate(chain):
            op, (x,) = node.op, node.inputs
            start = CollectiveStart(op, closes=i == len(chain) - 1)
            ticket = start(x) if ticket is None else start(x, ticket)
            pairs.append((node.outputs[0], CollectiveWait(op)(ticket, x)))
    return pairs


def _chain_key(node, block_of):
    """Allreduces that may share messages: one block, reduce op and dtype."""
    if not isinstance(node.op, Allreduce):
        return None
    return block_of(node), node.op.op, node.inputs[0].type.dtype
