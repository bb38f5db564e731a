"""FunctionGraph: a private, mutable graph between fixed inputs and outputs.

``vmc.function`` clones the user's graph into one, the rewrites edit it with
``replace``, and the scheduler reads it. It tracks the clients of every
variable so rewrites can ask "who reads this?" in O(1).
"""
from __future__ import annotations

from .basic import Constant, SharedVariable, Variable
from .traversal import clone_get_equiv, toposort


class FunctionGraph:
    def __init__(self, inputs, outputs, clone=True):
        inputs, outputs = list(inputs), list(outputs)
        if clone:
            memo = clone_get_equiv(inputs, outputs, copy_inputs=True)
            self.equiv = memo
            inputs = [memo[v] for v in inputs]
            outputs = [memo[v] for v in outputs]
        else:
            self.equiv = None
        self.inputs = inputs
        self.outputs = outputs
        self.clients = {}       # variable -> list of (node, input index); node "output" for outputs
        self.apply_nodes = set()
        self.variables = set()
        for v in inputs:
            self._add_var(v)
        for node in toposort(outputs, blockers=inputs):
            self._import_node(node)
        for i, out in enumerate(outputs):
            self._add_var(out)
            self.clients[out].append(("output", i))

    # -- bookkeeping ---------------------------------------------------------
    def _add_var(self, v):
        if v not in self.variables:
            self.variables.add(v)
            self.clients[v] = []

    def _import_node(self, node):
        if node in self.apply_nodes:
            return
        self.apply_nodes.add(node)
        for i, v in enumerate(node.inputs):
            self._add_var(v)
            self.clients[v].append((node, i))
        for o in node.outputs:
            self._add_var(o)

    def _import(self, var):
        """Add the nodes ``var`` needs that are not in the graph yet."""
        for node in toposort([var], blockers=self.variables):
            if node not in self.apply_nodes:
                for v in node.inputs:
                    if v.owner is None and v not in self.variables and not isinstance(
                            v, (Constant, SharedVariable)):
                        raise ValueError(f"replacement depends on {v!r}, which is not an "
                                         f"input of this graph")
                self._import_node(node)

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
            self.apply_nodes.discard(node)
            for o in node.outputs:
                self.variables.discard(o)
                self.clients.pop(o, None)
            for i, inp in enumerate(node.inputs):
                cl = self.clients.get(inp)
                if cl is not None:
                    cl.remove((node, i))
                    if not cl:
                        stack.append(inp)

    # -- editing -------------------------------------------------------------
    def replace(self, var, new, reason=None, check_type=True):
        """Make every reader of ``var`` read ``new`` instead."""
        if var not in self.variables:
            raise ValueError(f"cannot replace {var!r}: it is not in this graph")
        if check_type and var.type != new.type:
            if not (hasattr(var.type, "is_super") and var.type.is_super(new.type)):
                raise TypeError(f"replacement for {var!r} (reason: {reason}) has type "
                                f"{new.type}, expected {var.type}")
        if var is new:
            return
        self._import(new)
        for node, i in list(self.clients[var]):
            if node == "output":
                self.outputs[i] = new
            else:
                node.inputs[i] = new
            self.clients[new].append((node, i))
        self.clients[var] = []
        self._prune(var)

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
