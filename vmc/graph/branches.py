"""Lazy branches: under which branches of lazy ops each node of a graph runs.

An op that evaluates some of its inputs only on some runs (``ifelse``) says
which with ``Op.branches(node)``: a tuple of groups of input positions, one
group per branch, exactly one of which is needed per run; positions in no
group (the condition) are always needed. An eager op has none (the default).

A ``Context`` is a path of (lazy node, branch) choices, outermost first; the
root is the empty path. A value is demanded under a set of contexts that
exclude each other (no run takes two of them), and the scheduler places its
node in the block of each: it runs at most once per call, and only when one
of them is taken. Adding a demand to such a set:

- a context already covered (one in the set is a prefix of it) adds nothing;
- two contexts that may both be taken in one run (a branch, and the code
  after its join; branches of two sibling lazy nodes) meet at their common
  prefix, which replaces both: the value is computed once, before either;
- contexts that take different branches of one node are both kept;
- when every branch of a node under one context is in the set, they are
  replaced by that context: whenever it runs, one of them is taken. Without
  this, a value both branches of an ``ifelse`` read was placed in each, and
  a chain of D ifelses made 2**D copies of its first value.

Graph inputs, constants and shared values are not placed (no node makes them),
so their demands are not tracked. The cost is linear in the size of the graph
times the number of contexts a value has (usually one) and the depth at
which demands meet. A value read by one branch of each of D nested ifelses
has D contexts (it stays lazy, copied into D blocks): cubic in D, about a
second for D = 500.
"""
from __future__ import annotations


class Context:
    """One node of the tree of branch paths. Made through ``child``, so that
    each path exists once and contexts compare by identity."""
    __slots__ = ("parent", "node", "branch", "n_branches", "depth", "serial", "_children",
                 "_counter")

    def __init__(self, parent=None, node=None, branch=-1, n_branches=0):
        self.parent, self.node, self.branch, self.n_branches = parent, node, branch, n_branches
        self.depth = 0 if parent is None else parent.depth + 1
        self._counter = [0] if parent is None else parent._counter
        self.serial = self._counter[0]
        self._counter[0] += 1
        self._children = {}

    def child(self, node, branch, n_branches):
        """The context of branch ``branch`` (of ``n_branches``) of the lazy
        ``node`` run under this one."""
        key = (node, branch)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = Context(self, node, branch, n_branches)
        return c

    def get_child(self, node, branch):
        """That child when some value is demanded there, else None."""
        return self._children.get((node, branch))

    def ancestor(self, depth):
        c = self
        while c.depth > depth:
            c = c.parent
        return c

    def __repr__(self):
        path, c = [], self
        while c.parent is not None:
            path.append(f"{c.node.op}#{c.branch}")
            c = c.parent
        return "Context(" + " / ".join(reversed(path)) + ")"


def lazy_groups(node):
    """``node.op.branches(node)``, or None for an eager op."""
    fn = getattr(node.op, "branches", None)
    return None if fn is None else fn(node)


def branch_contexts(order, outputs):
    """``(root, {node: tuple of contexts})`` for the nodes of ``order`` (a
    topological order) that ``outputs`` need; each tuple holds contexts that
    exclude each other, ordered by creation (deterministic)."""
    root = Context()
    everywhere = (root,)
    demand = {o: everywhere for o in outputs}
    ctx_of = {}

    def need(v, ctxs):
        if v.owner is None:             # no node to place
            return
        old = demand.get(v)
        if old is None or ctxs is everywhere:
            demand[v] = ctxs
        elif old is not everywhere:
            for c in ctxs:
                old = _add(old, c)
            demand[v] = old

    for node in reversed(order):
        ctxs = None
        for o in node.outputs:
            d = demand.get(o)
            if d is not None:
                if ctxs is None:
                    ctxs = d
                else:
                    for c in d:
                        ctxs = _add(ctxs, c)
        if ctxs is None:
            continue
        if len(ctxs) > 1:
            ctxs = tuple(sorted(ctxs, key=_serial))
        if ctxs == everywhere:
            ctxs = everywhere
        ctx_of[node] = ctxs
        groups = lazy_groups(node)
        if groups is None:
            for v in node.inputs:
                need(v, ctxs)
            continue
        branch_of = {i: k for k, group in enumerate(groups) for i in group}
        for i, v in enumerate(node.inputs):
            k = branch_of.get(i)
            if k is None:
                need(v, ctxs)
            else:
                need(v, tuple(c.child(node, k, len(groups)) for c in ctxs))
    return root, ctx_of


def _serial(c):
    return c.serial


def _add(ctxs, new):
    """``ctxs`` (pairwise exclusive) with a demand under ``new`` added."""
    result, pending = list(ctxs), [new]
    while pending:
        c = pending.pop()
        for i, d in enumerate(result):
            common = _common(c, d)
            if common is d:                     # d runs whenever c does
                break
            if common is c or not _exclusive(c, d, common):
                result.pop(i)                   # meet at the common prefix
                pending.append(common)
                break
        else:
            result.append(c)
            p = c.parent
            if p is not None:
                arms = [d for d in result if d.parent is p and d.node is c.node]
                if len(arms) == c.n_branches:   # every branch: whenever p runs
                    result = [d for d in result if not (d.parent is p and d.node is c.node)]
                    pending.append(p)
    return tuple(result)


def _common(a, b):
    """The longest common prefix of two contexts."""
    if a.depth > b.depth:
        a = a.ancestor(b.depth)
    elif b.depth > a.depth:
        b = b.ancestor(a.depth)
    while a is not b:
        a, b = a.parent, b.parent
    return a


def _exclusive(a, b, common):
    """Whether ``a`` and ``b`` (both below ``common``) take different branches
    of one lazy node right below it, so that no run takes both."""
    x, y = a.ancestor(common.depth + 1), b.ancestor(common.depth + 1)
    return x.node is y.node and x.branch != y.branch
