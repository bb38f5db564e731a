"""The scheduler: an optimized FunctionGraph becomes a Program.

1. **Blocks.** Each node is placed in the block of the branches that demand it:
   a node only one branch of an ``ifelse`` needs sits in that branch's block,
   guarded by a jump on the condition, so the branch not taken runs nothing.
   A node needed by branches that exclude each other (the else of an inner
   ifelse and the else of the outer one) sits in each of their blocks: it
   still runs at most once per call. Work two branches may both need in one
   call (branches of sibling ifelses) runs once, before both.
2. **Order.** Topological inside each block; shared-variable updates that can
   overwrite the old value go last, after everything that can fail. An op
   may ask for a place (``placement``): "asap" right after its inputs are
   made, "alap" just before its first reader. Ops that run as a
   non-blocking start and a wait (collectives) are first split into two
   nodes by their own hook (``split_async``), whose start is "asap" and whose
   wait is "alap": what runs between them overlaps the communication.
3. **Frees.** A register is released after its last reader in program order;
   a jump over a block releases what that block would have.
4. **In-place.** An input whose buffer dies at a node, and that nothing else
   can observe (no user argument, constant, shared value or live alias), is
   offered to the node's thunk as destroyable.
"""
from __future__ import annotations

import threading
import weakref

from vmc.graph.basic import Constant, SharedVariable
from vmc.graph.branches import branch_contexts, lazy_groups
from vmc.program import JUMP, JUMP_IF_FALSE, KIND_NAMES, MOVE, THUNK, Program, int_array


class Instr:
    """One instruction before assembly; ``ins``, ``outs`` and ``frees`` hold
    variables, ``skip`` the (start, end) of the block a jump skips."""
    __slots__ = ("kind", "node", "ins", "outs", "target", "frees", "skip", "label")

    def __init__(self, kind, node=None, ins=None, outs=None, target=-1, frees=None,
                 skip=None, label=""):
        self.kind = kind
        self.node = node
        self.ins = [] if ins is None else ins
        self.outs = [] if outs is None else outs
        self.target = target
        self.frees = [] if frees is None else frees
        self.skip = skip
        self.label = label

    def __repr__(self):
        return (f"Instr({KIND_NAMES[self.kind]}, {self.label!r}, ins={self.ins}, "
                f"outs={self.outs}, target={self.target}, frees={self.frees})")


# -- 1. blocks -------------------------------------------------------------------
# Where each node runs: vmc.graph.branches (one set of contexts per node, the
# same the fusion pass reads). An ifelse's branch blocks are emitted inside the
# block of each context the ifelse itself runs under.


def linearize(order, outputs, late=(), precheck=None, reorder=None):
    """``(instructions, late nodes placed last)`` for ``order``, with ifelse
    blocks. Of ``late``, the nodes outside every branch go last, after the
    check node ``precheck(late nodes)`` returns as ``(late nodes, check)``,
    in the order ``reorder(instructions so far, late nodes)`` gives; the
    others are scheduled as usual."""
    root, ctx_of = branch_contexts(order, outputs)
    late_set = set(late)
    late = [n for n in order if n in late_set and ctx_of.get(n) == (root,)]
    check = None
    if precheck is not None:
        late, check = precheck(late)
    late_set = set(late)
    by_ctx = {}
    for node in order:
        ctxs = ctx_of.get(node)
        if ctxs is None or node in late_set:
            continue
        for ctx in ctxs:
            block = by_ctx.get(ctx)
            if block is None:
                block = by_ctx[ctx] = []
            block.append(node)
    for ctx, nodes in by_ctx.items():
        by_ctx[ctx] = _placed(nodes, ctx, by_ctx)
    code, labels = [], {}
    _emit_blocks(root, by_ctx, code, labels)
    if reorder is not None:
        late = reorder(code, late)
    if check is not None:
        code.append(_thunk_instr(check, labels))
    for node in late:
        code.append(_thunk_instr(node, labels))
    return code, late


def split_async(fgraph):
    """Replace the nodes whose op class has a ``split_start_wait(nodes, block_of)``
    hook by what the hook returns (pairs of old and new variables): a start node
    and a wait node each, the start reading the inputs and the wait reading the
    start's ticket and the inputs again, so that the inputs' buffers stay alive
    and unwritten (no frees, no in-place) until the wait. The hook gets all
    nodes of its ops at once, in topological order, and ``block_of(node)`` (the
    lazy block a node runs in) so that it never ties nodes of two blocks together
    (to share a message, say). Returns whether anything was split."""
    if not any(hasattr(type(n.op), "split_start_wait") for n in fgraph.apply_nodes):
        return False            # (the usual case: no second walk of the graph)
    order = fgraph.toposort()
    groups = {}
    for node in order:
        hook = getattr(type(node.op), "split_start_wait", None)
        if hook is not None:
            groups.setdefault(hook, []).append(node)
    _, ctx_of = branch_contexts(order, list(fgraph.outputs))
    for hook, nodes in groups.items():
        fgraph.replace_all(hook(nodes, ctx_of.get), reason="split_async")
    return True


def _placed(nodes, ctx, by_ctx):
    """One block's nodes (topological) with each "asap" node moved up to just after
    the last producer of its inputs in the block, and each "alap" node down to just
    before the first entry that reads its outputs (an ifelse entry reads what its
    branches read). Still topological: an asap node's key is above its producers'
    keys, an alap node's below its readers' places."""
    if not any(getattr(n.op, "placement", None) for n in nodes):
        return nodes
    made = {o: n for n in nodes for o in n.outputs}
    first_reader = {}
    for i, n in enumerate(nodes):
        for v in _block_reads(n, ctx, by_ctx):
            p = made.get(v)
            if p is not None and p not in first_reader:
                first_reader[p] = i
    key = {}
    for i, n in enumerate(nodes):
        how = getattr(n.op, "placement", None)
        if how == "alap":
            key[n] = (first_reader.get(n, len(nodes)) - 0.5, 0)
        elif how == "asap":
            base = max((key[made[v]] for v in n.inputs if v in made), default=(-1, 0))
            key[n] = (base[0], base[1] + 1)
        else:
            key[n] = (i, 0)
    pos = {n: i for i, n in enumerate(nodes)}
    return sorted(nodes, key=lambda n: (key[n], pos[n]))


def _block_reads(node, ctx, by_ctx):
    """The variables the entry of ``node`` in block ``ctx`` reads: its inputs, and
    for a lazy node (an ifelse) what every node of its branches (nested ones too)
    reads."""
    if lazy_groups(node) is None:
        return node.inputs
    reads, stack = list(node.inputs), [(node, ctx)]
    while stack:
        n, c = stack.pop()
        for branch in range(len(lazy_groups(n))):
            inner = c.get_child(n, branch)
            for m in by_ctx.get(inner, ()) if inner is not None else ():
                reads.extend(m.inputs)
                if lazy_groups(m) is not None:
                    stack.append((m, inner))
    return reads


def cache_order(code, late):
    """The late nodes, those whose inputs were all touched most recently first.

    Late updates are independent of each other, and in an LRU cache the
    update whose coldest input was touched last is the likeliest to find
    all of its inputs still there; an update that streams a big cold
    operand (a first layer's weights and batch) evicts the others' if it
    runs first. Measured on the MLP step of bench C: the output layer's
    gradient gemm finds its hidden activations in cache (-1% per step).
    0-d inputs (scalars) move no data and do not count."""
    touched = {}
    for pc, ins in enumerate(code):
        node = getattr(ins, "node", None)
        if node is not None:
            for v in node.inputs:
                touched[v] = pc
            for v in node.outputs:
                touched[v] = pc

    def coldest(node):
        return min((touched.get(v, -1) for v in node.inputs if v.type.ndim), default=len(code))
    return sorted(late, key=coldest, reverse=True)


def _thunk_instr(node, labels=None):
    # One str() per op object, not per node. Keyed by identity: hashing and
    # comparing ops by their props costs more than printing them.
    op = node.op
    if labels is None:
        label = str(op)
    else:
        label = labels.get(id(op))
        if label is None:
            label = labels[id(op)] = str(op)
    return Instr(THUNK, node, list(node.inputs), list(node.outputs), label=label)


def _emit_blocks(root, by_ctx, code, labels):
    """Append the instructions of the root block to ``code``. Iterative: each
    block is a generator that yields the generator of a nested block where
    that block's instructions belong (ifelse nesting has no depth limit)."""
    stack = [_block(root, by_ctx, code, labels)]
    while stack:
        nested = next(stack[-1], None)
        if nested is None:
            stack.pop()
        else:
            stack.append(nested)


def _block(ctx, by_ctx, code, labels):
    for node in by_ctx.get(ctx, ()):
        groups = lazy_groups(node)
        if groups is None:
            code.append(_thunk_instr(node, labels))
            continue
        # an ifelse: input 0 is the condition, the groups its two branches
        jif = Instr(JUMP_IF_FALSE, node, [node.inputs[0]], label="ifelse")
        code.append(jif)
        start = len(code)
        yield _block(ctx.get_child(node, 0), by_ctx, code, labels)
        for i, o in zip(groups[0], node.outputs):
            code.append(Instr(MOVE, node, [node.inputs[i]], [o], label="ifelse.then"))
        jmp = Instr(JUMP, node, label="ifelse.end")
        code.append(jmp)
        jif.target, jif.skip = len(code), (start, len(code))
        start = len(code)
        yield _block(ctx.get_child(node, 1), by_ctx, code, labels)
        for i, o in zip(groups[1], node.outputs):
            code.append(Instr(MOVE, node, [node.inputs[i]], [o], label="ifelse.else"))
        jmp.target, jmp.skip = len(code), (start, len(code))


# -- 3. frees --------------------------------------------------------------------
def plan_frees(code, keep):
    """Attach to each instruction the variables whose last reader it is."""
    last = {}
    for pc, ins in enumerate(code):
        for v in ins.ins:
            last[v] = pc
    for v, pc in last.items():
        if v not in keep:
            code[pc].frees.append(v)
    defined_at = {}
    for pc, ins in enumerate(code):
        for v in ins.outs:
            defined_at.setdefault(v, pc)
    for ins in code:
        if ins.skip is None:
            continue
        a, b = ins.skip
        for pc in range(a, b):
            for v in code[pc].frees:
                if not a <= defined_at.get(v, -1) < b:
                    ins.frees.append(v)
    return last


# -- 4. aliasing and in-place ------------------------------------------------------
def alias_roots(order, graph_inputs):
    """Map variable -> frozenset of the variables whose buffers it may share.

    Graph inputs map to themselves; so does every output of a node without a
    ``view_map``, which owns its buffer: those are left out of the map, so
    read it as ``roots.get(v) or (v,)``."""
    roots = {v: frozenset((v,)) for v in graph_inputs}
    for node in order:
        vmap = _aliases(node.op)
        if not vmap:
            continue
        for i, o in enumerate(node.outputs):
            if i in vmap:
                r = frozenset()
                for j in vmap[i]:
                    inp = node.inputs[j]
                    r |= roots.get(inp) or frozenset((inp,))
                roots[o] = r
    return roots


def _aliases(op):
    """output -> inputs whose buffer it may share: its views, and the inputs an
    op that declares ``destroy_map`` (a user op's perform) writes its result into."""
    vmap = getattr(op, "view_map", None)
    dmap = getattr(op, "destroy_map", None)
    if not dmap:
        return vmap
    merged = {k: list(v) for k, v in (vmap or {}).items()}
    for k, v in dmap.items():
        merged[k] = merged.get(k, []) + list(v)
    return merged


def destroyable_inputs(code, roots, protected, last_read, update_targets=None, outputs=()):
    """For each THUNK instruction, the input positions its thunk may overwrite.

    An input may be overwritten when this instruction is the last reader of
    every variable that may share its buffer, and that buffer holds nothing
    ``protected`` (user arguments, constants, shared values, outputs),
    including through a view: an output that is a view of an intermediate
    protects the intermediate. ``update_targets`` maps a node to the shared
    variable whose buffer it may overwrite anyway (``w - lr * g`` placed
    last); ``outputs`` (everything read back after the run, update values
    included) stay protected even then.
    """
    update_targets = update_targets or {}
    guard = _protected_roots(roots, protected)
    kept = _protected_roots(roots, outputs)
    # A buffer is live while any variable on it is still to be read. A
    # variable absent from ``roots`` owns its buffer and only views (which
    # are in ``roots``) can extend its life beyond its own last read.
    root_last = {}
    for v, rs in roots.items():
        pc = last_read.get(v)
        if pc is None:
            continue
        for r in rs:
            if root_last.get(r, -1) < pc:
                root_last[r] = pc
    for r in root_last:     # a base outside ``roots`` is read as itself too
        root_last[r] = max(root_last[r], last_read.get(r, -1))
    result = {}
    for pc, ins in enumerate(code):
        if ins.kind != THUNK:
            continue
        ok = []
        allowed = update_targets.get(ins.node)
        args = ins.ins
        for i, v in enumerate(args):
            if last_read.get(v) != pc:
                continue
            vr = roots.get(v) or (v,)
            if not guard.isdisjoint(vr) and (v is not allowed or not kept.isdisjoint(vr)
                                             or len(vr) != 1):
                continue
            if any(root_last.get(r, -1) > pc for r in vr):
                continue
            if len(args) > 1 and any(w is not v and not _disjoint(vr, roots.get(w) or (w,))
                                     for w in args):
                continue
            ok.append(i)
        mine = [i for i in ok if args[i] is allowed]
        # An update that may write into its shared variable's own buffer does so
        # alone: writing into another input (w - lr * g into g) would hand w that
        # buffer, one its producer meant to use again (an MPI receive buffer, a
        # thunk's reused output), and w would change buffers at every call.
        result[pc] = frozenset(mine or ok)
    return result


def _disjoint(a, b):
    return all(x not in b for x in a)


def _protected_roots(roots, protected):
    guard = set()
    for p in protected:
        guard.update(roots.get(p) or (p,))
    return guard


# -- assembly ----------------------------------------------------------------------
def assemble(code, thunk_index, thunks, regs, inputs, outputs, consts, shareds, updates):
    """Flatten instructions into a Program. ``regs`` maps variable -> register;
    ``thunk_index`` maps pc -> position in ``thunks``."""
    n = len(code)
    kind, thunk, target = [0] * n, [-1] * n, [-1] * n
    in_start, n_in, out_start, n_out, free_start, n_free = ([0] * n for _ in range(6))
    ins, outs, frees = [], [], []
    for pc, instr in enumerate(code):
        kind[pc] = instr.kind
        thunk[pc] = thunk_index.get(pc, -1)
        target[pc] = instr.target
        in_start[pc], n_in[pc] = len(ins), len(instr.ins)
        ins.extend([regs[v] for v in instr.ins])
        out_start[pc], n_out[pc] = len(outs), len(instr.outs)
        outs.extend([regs[v] for v in instr.outs])
        free_start[pc] = len(frees)
        if instr.frees:
            fr = sorted({regs[v] for v in instr.frees})
            n_free[pc] = len(fr)
            frees.extend(fr)
    arrays = dict(kind=kind, thunk=thunk, in_start=in_start, n_in=n_in, out_start=out_start,
                  n_out=n_out, free_start=free_start, n_free=n_free, target=target)
    return Program(
        n_regs=len(regs), **{k: int_array(v) for k, v in arrays.items()},
        ins=int_array(ins), outs=int_array(outs), frees=int_array(frees),
        thunks=list(thunks),
        input_regs=int_array([regs[v] for v in inputs]),
        output_regs=int_array([regs[v] for v in outputs]),
        const_regs=int_array([regs[c] for c in consts]),
        const_values=[c.data for c in consts],
        shared_regs=int_array([regs[s] for s in shareds]),
        shared_cells=[s.container for s in shareds],
        update_regs=int_array([regs[u] for _, u in updates]),
        update_cells=[s.container for s, _ in updates],
        update_locks=[cell_lock(s) for s, _ in updates],
        labels=[i.label for i in code])


def is_storage(v):
    return isinstance(v, (Constant, SharedVariable))


# -- locks of shared variables -------------------------------------------------------
_cell_locks = {}                    # id(shared variable) -> its lock, while it lives
_cell_locks_guard = threading.Lock()


def cell_lock(var):
    """The one lock of shared variable ``var``, made on first use: every function that
    updates ``var`` holds it from reading to committing (see ``vmc._vm.VM``)."""
    key = id(var)
    lock = _cell_locks.get(key)
    if lock is None:
        with _cell_locks_guard:
            lock = _cell_locks.get(key)
            if lock is None:
                lock = _cell_locks[key] = _new_lock()
                weakref.finalize(var, _cell_locks.pop, key, None)
    return lock


def _new_lock():
    try:
        from vmc._vm import CellLock
    except ImportError:             # the Cython VM is not built: the Python VM's lock
        return threading.Lock()
    return CellLock()
