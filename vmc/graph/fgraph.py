"""FunctionGraph: a private, mutable graph between fixed inputs and outputs.

``vmc.function`` clones the user's graph into one, the rewrites edit it with
``replace``, and the scheduler reads it. It tracks the clients of every
variable so rewrites can ask "who reads this?" in O(1).
"""
from __future__ import annotations

from .basic import Constant, SharedVariable
from .traversal import clone_along, toposort


class Clients(dict):
    """The readers of one variable, ``(node, input index)`` pairs (``("output",
    k)`` for output ``k``), in the order they came: used as a list (iterated,
    ``len``, ``[0]``, ``append``, ``remove``), held as a dict so that a
    membership test or a removal costs O(1) (detaching the readers of a
    constant that thousands of nodes read was quadratic)."""
    __slots__ = ()

    def append(self, pair):
        self[pair] = None

    def remove(self, pair):
        try:
            del self[pair]
        except KeyError:
            raise ValueError(f"{pair!r} is not a client") from None

    def __getitem__(self, k):
        if isinstance(k, int):
            if k < 0:
                k += len(self)
            for j, pair in enumerate(self):
                if j == k:
                    return pair
            raise IndexError("client index out of range")
        return dict.__getitem__(self, k)

    def __eq__(self, other):
        return list(self) == list(other) if isinstance(other, (list, tuple)) \
            else dict.__eq__(self, other)

    __hash__ = None

    def __repr__(self):
        return repr(list(self))


class FunctionGraph:
    def __init__(self, inputs, outputs, clone=True, order=None):
        """``order``: ``toposort(outputs, blockers=inputs)`` when the caller has it."""
        inputs, outputs = list(inputs), list(outputs)
        if order is None:
            order = toposort(outputs, blockers=inputs)
        if clone:
            memo = clone_along(order, inputs, outputs, copy_inputs=True)
            self.equiv = memo
            inputs = [memo[v] for v in inputs]
            outputs = [memo[v] for v in outputs]
            order = [memo[n] for n in order]
        else:
            self.equiv = None
        self.inputs = inputs
        self.outputs = outputs
        # evaluate(node, input values) -> output values, for constant folding
        # (set by ``vmc.opt.optimize``; the graph itself never runs ops)
        self.evaluate = None
        self.clients = {}       # variable -> Clients: (node, input index); node "output" for outputs
        self.apply_nodes = set()
        self.variables = set()
        for v in inputs:
            self._add_var(v)
        for node in order:
            self._import_node(node)
        for i, out in enumerate(outputs):
            self._add_var(out)
            self.clients[out].append(("output", i))

    # -- bookkeeping ---------------------------------------------------------
    def _add_var(self, v):
        if v not in self.variables:
            self.variables.add(v)
            self.clients[v] = Clients()

    def _import_node(self, node):
        if node in self.apply_nodes:
            return
        self.apply_nodes.add(node)
        clients, variables = self.clients, self.variables
        for i, v in enumerate(node.inputs):
            cl = clients.get(v)
            if cl is None:
                variables.add(v)
                cl = clients[v] = Clients()
            cl[(node, i)] = None
        for o in node.outputs:
            if o not in clients:
                variables.add(o)
                clients[o] = Clients()

    def _import(self, var):
        """Add the nodes ``var`` needs that are not in the graph yet. Checks
        everything before adding anything, so a failed replace leaves the
        graph as it was."""
        nodes = [n for n in toposort([var], blockers=self.variables)
                 if n not in self.apply_nodes]
        for node in nodes:
            for v in node.inputs:
                if v.owner is None and v not in self.variables and not isinstance(
                        v, (Constant, SharedVariable)):
                    raise ValueError(f"replacement depends on {v!r}, which is not an "
                                     f"input of this graph")
        # A replacement may itself be a new constant or shared variable.
        if var.owner is None and var not in self.variables:
            if not isinstance(var, (Constant, SharedVariable)):
                raise ValueError(f"replacement {var!r} is not an input of this graph")
            self._add_var(var)
        for node in nodes:
            self._import_node(node)
        return nodes

    def _prune(self, var):
        """Remove ``var``'s owner (and its now-unused ancestors) if unused."""
        stack = [var]
        while stack:
            v = stack.pop()
            node = v.owner
            if node is None or node not in self.apply_nodes:
                continue
            if any(self.clients.get(o) for o in node.outputs):
                continue
            stack.extend(self.detach(node))

    def detach(self, node):
        """Remove ``node`` and its outputs; return the inputs it was the last
        client of. An input whose client list lacks the node (a pass edited
        ``node.inputs`` directly) is left as it is."""
        self.apply_nodes.discard(node)
        for o in node.outputs:
            self.variables.discard(o)
            self.clients.pop(o, None)
        emptied = []
        for i, inp in enumerate(node.inputs):
            cl = self.clients.get(inp)
            if cl is not None and (node, i) in cl:
                del cl[(node, i)]
                if not cl:
                    emptied.append(inp)
        return emptied

    # -- editing -------------------------------------------------------------
    def replace(self, var, new, reason=None, check_type=True):
        """Make every reader of ``var`` read ``new`` instead.

        Readers are those in the graph before the call: the nodes of ``new``
        itself may read ``var`` (``replace(x, f(x))`` inserts ``f`` after ``x``).
        """
        if var not in self.variables:
            raise ValueError(f"cannot replace {var!r}: it is not in this graph")
        if check_type and var.type != new.type:
            if not (hasattr(var.type, "is_super") and var.type.is_super(new.type)):
                raise TypeError(f"replacement for {var!r} (reason: {reason}) has type "
                                f"{new.type}, expected {var.type}")
        if var is new:
            return
        readers = list(self.clients[var])
        added = self._import(new)
        if var.owner is not None:
            # Nodes made by a rewrite would name the line that compiled the
            # function; runtime errors should name the line that made `var`.
            for node in added:
                node.trace = var.owner.trace
        for node, i in readers:
            if node == "output":
                self.outputs[i] = new
            else:
                node.inputs[i] = new
            self.clients[new].append((node, i))
        cl = self.clients[var]
        for pair in readers:            # new's own nodes stay
            del cl[pair]
        self._prune(var)

    def set_output(self, k, new):
        """Make output ``k`` read ``new`` (whose graph may read the old output),
        leaving the other readers of the old output alone."""
        old = self.outputs[k]
        self._import(new)
        self.clients[old].remove(("output", k))
        self.clients[new].append(("output", k))
        self.outputs[k] = new

    def replace_all(self, pairs, reason=None):
        for var, new in pairs:
            if var in self.variables:
                self.replace(var, new, reason)

    # -- reading -------------------------------------------------------------
    def toposort(self):
        return toposort(self.outputs, blockers=self.inputs)

    def __str__(self):
        from .printing import debugprint
        return debugprint(self, file="str")
