"""Elementwise fusion: maximal groups of elementwise nodes become one
``FusedElemwise`` node, which holds the group as a small scalar DAG and runs
as one generated C loop (``vmc.thunks.cgen``), or as numpy calls that reuse
their temporaries when no compiler is there.

Groups are grown from each not-yet-fused elementwise node towards its inputs:
a producer joins when every reader of its output is already in the group and
it loops over the same broadcast pattern. Then a group whose output another
group reads directly absorbs that producer group when no other path joins the
two (which would make a cycle), giving kernels with several outputs. Finally a
group whose only reader is a sum/prod/max/min takes the reduction in, so
``sum(x ** 2)`` is one pass over ``x``.
"""
from __future__ import annotations

import heapq

from vmc.graph.basic import Constant
from vmc.graph.branches import branch_contexts
from vmc.tensor.elemwise import Elemwise
from vmc.tensor.fused import FusedElemwise
from vmc.tensor.math import REDUCTIONS, CAReduce
from vmc.tensor.scalar import get_scalar_op

from .rewriting import fit



# -- the pass ---------------------------------------------------------------------------
def _fusable(node):
    return isinstance(node.op, Elemwise) and len(node.outputs) == 1


class _Groups:
    def __init__(self, fgraph, order):
        self.fgraph = fgraph
        self.pos = {n: i for i, n in enumerate(order)}
        # The ifelse branches each node runs under: fusing across them would
        # make a lazy branch eager.
        self.ctx = branch_contexts(order, fgraph.outputs)[1]
        self.of = {}          # node -> group id
        self.members = {}     # group id -> list of nodes

    def pattern(self, node):
        return node.outputs[0].type.broadcastable

    def compatible(self, a, b):
        return (_fusable(a) and _fusable(b) and self.pattern(a) == self.pattern(b)
                and self.ctx.get(a, ()) == self.ctx.get(b, ()))

    def readers(self, node):
        return [c for o in node.outputs for c, _ in self.fgraph.clients.get(o, ())]

    # phase 1: single-output trees
    def grow(self, root):
        gid = len(self.members)
        self.of[root] = gid
        members, seen, heap = [root], {root}, []

        def push(n):
            for v in n.inputs:
                p = v.owner
                if p is not None and p not in seen and p in self.pos:
                    seen.add(p)
                    heapq.heappush(heap, (-self.pos[p], p.outputs[0].id, p))
        push(root)
        while heap:          # latest first: a producer's readers are decided before it
            _, _, cand = heapq.heappop(heap)
            if cand in self.of or not self.compatible(cand, root):
                continue
            if all(r != "output" and self.of.get(r) == gid for r in self.readers(cand)):
                self.of[cand] = gid
                members.append(cand)
                push(cand)
        self.members[gid] = members

    # phase 2: absorb producer groups (several outputs) when no cycle results.
    # On the graph of groups (a node outside every group stands for itself),
    # kept as successor and predecessor sets: an absorption costs the two
    # groups' degrees, not their sizes (a 4000-step gradient chain was quadratic).
    def merge_producers(self):
        succ, pred, lo, hi = self._quotient()
        for gid in sorted(self.members, key=hi.__getitem__):
            if gid not in self.members:
                continue
            root = self.members[gid][0]
            changed = True
            while changed:
                changed = False
                cands = sorted(p for p in pred[gid] if type(p) is int and
                               self.compatible(self.members[p][0], root))
                for pid in cands:
                    if not _other_path(succ, lo, pid, gid, hi[gid]):
                        self._absorb(gid, pid, succ, pred, lo, hi)
                        changed = True
                        break
        for g, members in self.members.items():
            for n in members:
                self.of[n] = g

    def _quotient(self):
        """The graph of groups: successors, predecessors, first and last positions."""
        succ, pred, lo, hi = {}, {}, {}, {}
        for n, i in self.pos.items():         # in order: producers come first
            g = self.of.get(n, n)
            if g not in succ:
                succ[g], pred[g], lo[g] = set(), set(), i
            hi[g] = i
            for v in n.inputs:
                p = v.owner
                if p is not None and p in self.pos:
                    gp = self.of.get(p, p)
                    if gp != g:
                        succ[gp].add(g)
                        pred[g].add(gp)
        return succ, pred, lo, hi

    def _absorb(self, gid, pid, succ, pred, lo, hi):
        # the smaller member list moves (a chain of absorptions stays linear);
        # ``of`` is brought up to date once, after the merging
        small, big = sorted((self.members.pop(pid), self.members[gid]), key=len)
        big.extend(small)
        self.members[gid] = big
        lo[gid], hi[gid] = min(lo[gid], lo.pop(pid)), max(hi[gid], hi.pop(pid))
        for s in succ.pop(pid):
            pred[s].discard(pid)
            if s != gid:
                pred[s].add(gid)
                succ[gid].add(s)
        for p in pred.pop(pid):
            succ[p].discard(pid)
            if p != gid:
                succ[p].add(gid)
                pred[gid].add(p)


def _other_path(succ, lo, pid, gid, limit):
    """True when ``gid`` is reachable from ``pid`` other than directly: a path
    through a group or node placed after ``gid``'s last node cannot come back."""
    stack = [g for g in succ[pid] if g != gid]
    seen = set(stack)
    while stack:
        g = stack.pop()
        if lo[g] > limit:
            continue
        for t in succ[g]:
            if t == gid:
                return True
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return False


def fusion_pass(fgraph, mode=None):
    """Replace maximal elementwise groups by FusedElemwise nodes."""
    order = fgraph.toposort()
    groups = _Groups(fgraph, order)
    for node in reversed(order):
        if _fusable(node) and node not in groups.of:
            groups.grow(node)
    groups.merge_producers()
    fired = {}
    for gid, members in list(groups.members.items()):
        members.sort(key=groups.pos.__getitem__)
        if _replace_group(fgraph, groups, members):
            fired["fusion"] = fired.get("fusion", 0) + 1
    return fired


def _absorbable_reduction(groups, outs):
    """The CAReduce node that is the only reader of the group's only output."""
    if len(outs) != 1:
        return None
    readers = groups.fgraph.clients.get(outs[0], [])
    if len(readers) != 1 or readers[0][0] == "output":
        return None
    red = readers[0][0]
    if not isinstance(red.op, CAReduce) or not REDUCTIONS[red.op.scalar_name].fusable:
        return None
    have, want = outs[0].type.dtype, red.outputs[0].type.dtype
    if have != want and not (have == "bool" or have.startswith(("int", "uint"))):
        return None                  # a count of bools or an int8 sum widens; floats do not
    if groups.ctx.get(red, ()) != groups.ctx.get(outs[0].owner, ()):
        return None
    return red


def _replace_group(fgraph, groups, members):
    inside = set(members)
    outs = [m.outputs[0] for m in members
            if any(r == "output" or r not in inside for r in groups.readers(m))]
    red = _absorbable_reduction(groups, outs)
    inputs, consts, index = [], [], {}
    for m in members:
        for v in m.inputs:
            if v.owner not in inside and v not in index and not _inline(v):
                index[v] = len(inputs)
                inputs.append(v)
    if not inputs:
        return False
    for m in members:
        for v in m.inputs:
            if v.owner not in inside and v not in index:
                consts.append((v.type.dtype, v.data.reshape(()).tobytes()))
                index[v] = ("c", len(consts) - 1)
    n_in, n_c = len(inputs), len(consts)
    ops = []
    for m in members:
        index[m.outputs[0]] = n_in + n_c + len(ops)
        ops.append((m.op.scalar_op, tuple(_idx(index[v], n_in) for v in m.inputs),
                    m.outputs[0].type.dtype))
    reduce = [None] * len(outs)
    if red is not None:
        want, k = red.outputs[0].type.dtype, index[outs[0]]
        if ops[k - n_in - n_c][2] != want:   # widen each element, then accumulate
            ops.append((get_scalar_op("cast", want), (k,), want))
            index[outs[0]] = n_in + n_c + len(ops) - 1
        reduce = [(red.op.scalar_name, red.op.axis, want)]
    op = FusedElemwise(n_in, consts, ops, [index[o] for o in outs], reduce)
    new = op.make_node(*inputs).outputs
    olds = [red.outputs[0]] if red is not None else outs
    pairs = [(old, fit(n, old)) for old, n in zip(olds, new)]
    if any(n is None for _, n in pairs):
        return False
    for old, n in pairs:
        fgraph.replace(old, n, reason="fusion", check_type=False)
    return True


def _inline(v):
    """Scalar constants become constants of the kernel."""
    return isinstance(v, Constant) and v.data.size == 1 and v.type.dtype != "object"


def _idx(i, n_in):
    return n_in + i[1] if isinstance(i, tuple) else i
