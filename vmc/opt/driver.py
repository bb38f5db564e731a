"""The equilibrium driver: apply a selection of node rewrites until none fires.

A worklist of nodes, seeded in topological order. Each node popped is first
merged with an equal node already seen (same op, same inputs: hash-consing,
so duplicates made by rewrites disappear as they appear), then offered to the
rewrites that track its op, in registration order; the first that returns a
replacement wins. After a replacement, the new nodes and the nodes that read
the replaced variables go back on the worklist (they may now match something),
and nothing else: a pass costs about linear time in the size of the graph.
"""
from __future__ import annotations

import warnings
from collections import Counter, deque

from vmc.config import config
from vmc.graph.basic import Constant
from vmc.graph.traversal import toposort

from .patterns import COMMUTATIVE
from .rewriting import fit


class RewriteError(RuntimeError):
    """A rewrite raised: a bug in the rewrite, reported with the node it was given."""


def _where(node):
    tr = getattr(node, "trace", None)
    return f" (created at {tr[0]}:{tr[1]})" if tr else ""


def _fail(rw_name, node, exc):
    msg = (f"rewrite {rw_name!r} failed on node {node.op}({', '.join(map(repr, node.inputs))})"
           f"{_where(node)}: {type(exc).__name__}: {exc}")
    if config.on_rewrite_error == "raise":
        raise RewriteError(msg) from exc
    warnings.warn(msg + "; skipping it", stacklevel=4)


def _merge_key(node):
    """The inputs, in a canonical order for commutative elementwise ops (so
    ``a * b`` and ``b * a`` merge)."""
    inputs = tuple(node.inputs)
    if len(inputs) == 2 and getattr(getattr(node.op, "scalar_op", None), "name",
                                    None) in COMMUTATIVE:
        if inputs[0].id > inputs[1].id:
            inputs = inputs[::-1]
    return inputs


class Equilibrium:
    """Runs one pass: ``Equilibrium(selection, merge=True)(fgraph) -> Counter``
    of the rewrites that fired (by name). With ``log`` (a list), each
    replacement is appended to it as ``(rewrite name or "merge", old, new)``.

    ``followup`` rewrites are offered only the nodes that a replacement made
    or touched, not the whole graph again: the stabilize pass re-canonicalizes
    what it changes without walking every node through canonicalize twice.
    """

    def __init__(self, selection, merge=True, followup=None, max_factor=50, log=None):
        self.selection = selection
        self.followup = followup
        self.merge = merge
        self.max_factor = max_factor
        self.log = log               # a list: gets (rewrite name, old, new) per replacement

    def __call__(self, fgraph):
        self.fgraph = fgraph
        self.fired = Counter()
        self.table = {}              # (inputs, op) -> nodes, for merging
        self.rewritten = {}          # (inputs, op) -> {output index: replacement}
        self.constants = {}          # signature -> constant, for merging
        self.touched = set()         # nodes made or re-queued by a replacement
        order = fgraph.toposort()
        self.queue = deque(order)
        self.queued = set(order)
        budget = self.max_factor * (len(order) + 100)
        steps = 0
        while self.queue:
            node = self.queue.popleft()
            self.queued.discard(node)
            if node not in fgraph.apply_nodes:
                continue
            steps += 1
            if steps > budget:
                warnings.warn(f"vmc.opt: the rewrites did not settle after {steps} steps "
                              f"(last: {node.op}); stopping this pass", stacklevel=3)
                break
            if self.merge and self._merge(node):
                continue
            self._rewrite(node)
        return self.fired

    # -- merging -------------------------------------------------------------
    def _merge(self, node):
        fg = self.fgraph
        for v in list(node.inputs):
            if isinstance(v, Constant):
                c = self.constants.setdefault(v.signature(), v)
                if c is not v and c.type == v.type:
                    # No re-queueing: readers of an equal constant match the same.
                    fg.replace(v, c, reason="merge", check_type=False)
        # Keyed by the inputs and the op (whose hash is cached): keyed by the
        # inputs alone, the many different ops that read one variable (the
        # fused comparisons of an ifelse chain's condition) were compared
        # pairwise, quadratic in their number.
        inputs = _merge_key(node)
        key = (inputs, node.op)
        bucket = self.table.setdefault(key, [])
        for other in bucket:
            if (other is not node and other in fg.apply_nodes and _merge_key(other) == inputs
                    and other.op == node.op
                    and all(a.type == b.type for a, b in zip(node.outputs, other.outputs))):
                self._replace(list(zip(node.outputs, other.outputs)), "merge")
                return True
        # A node equal to one a rewrite already replaced (made again since, by
        # a shape rule say) takes that replacement: rewriting it again would
        # make the same new nodes again, and a shape of an ifelse chain made
        # each level's twice, 2**D steps in all.
        done = self.rewritten.get(key)
        if done is not None and len(done) == len(node.outputs) and all(
                done[i] in fg.variables and done[i].owner is not node and done[i].type == o.type
                for i, o in enumerate(node.outputs)):
            self._replace([(o, done[i]) for i, o in enumerate(node.outputs)], "merge")
            return True
        if node not in bucket:
            bucket.append(node)
        return False

    # -- rewriting -----------------------------------------------------------
    def _rewrite(self, node):
        fg = self.fgraph
        rewrites = self.selection.for_node(node)
        if self.followup is not None and node in self.touched:
            rewrites = sorted(set(rewrites) | set(self.followup.for_node(node)),
                              key=lambda r: r.order)
        for rw in rewrites:
            try:
                result = rw.fn(fg, node)
                if not result:
                    continue
                pairs = self._pairs(node, result)
                done = bool(pairs) and self._replace(pairs, rw.name)
            except Exception as exc:   # a rewrite that raises is a bug: say which
                _fail(rw.name, node, exc)
                continue
            if done:
                self.fired[rw.name] += 1
                if self.merge:
                    self.rewritten[(_merge_key(node), node.op)] = {
                        old.index: new for old, new in pairs}
                return True
        return False

    @staticmethod
    def _pairs(node, result):
        if isinstance(result, dict):
            items = list(result.items())
        else:
            if len(result) != len(node.outputs):
                raise ValueError(f"returned {len(result)} replacements for "
                                 f"{len(node.outputs)} outputs")
            items = list(zip(node.outputs, result))
        pairs = []
        for old, new in items:
            if new is None or new is old:
                continue
            new = fit(new, old)
            if new is None:     # the types cannot agree: the rewrite does not apply
                return []
            pairs.append((old, new))
        return pairs

    def _replace(self, pairs, reason):
        fg = self.fgraph
        pairs = [(o, n) for o, n in pairs if o in fg.variables]
        if not pairs:
            return False
        new_nodes = toposort([n for _, n in pairs], blockers=fg.variables)
        for old, _ in pairs:
            for nn in new_nodes:
                if old in nn.inputs:
                    raise RuntimeError(f"{reason}: the replacement of {old!r} reads it "
                                       f"(a cycle)")
        # Only the readers whose input changes need another look (not every
        # reader of ``new``: a merged constant may have thousands).
        # The readers of what the replaced nodes read lose a reader each: one
        # may now be the only one (a chain can then look through that input).
        readers, lost = [], []
        for old, new in pairs:
            if old in fg.variables:
                if self.log is not None:
                    self.log.append((reason, old, new))
                readers += [c for c, _ in fg.clients[old] if c != "output"]
                if old.owner is not None:
                    lost += old.owner.inputs
                fg.replace(old, new, reason=reason, check_type=False)
        todo = [n for n in new_nodes if n in fg.apply_nodes]
        todo += [n for n in readers if n in fg.apply_nodes]
        for v in lost:
            cl = fg.clients.get(v, ())
            if len(cl) == 1 and cl[0][0] != "output":
                todo.append(cl[0][0])
        self.touched.update(todo)
        for n in reversed(todo):
            if n not in self.queued:
                self.queued.add(n)
                self.queue.appendleft(n)
        return True
