"""The scheduler: an optimized FunctionGraph becomes a Program.

1. **Blocks.** Each node is placed in the block of the branches that demand it:
   a node only one branch of an ``ifelse`` needs sits in that branch's block,
   guarded by a jump on the condition, so the branch not taken runs nothing.
2. **Order.** Topological inside each block; shared-variable updates that can
   overwrite the old value go last, after everything that can fail.
3. **Frees.** A register is released after its last reader in program order;
   a jump over a block releases what that block would have.
4. **In-place.** An input whose buffer dies at a node, and that nothing else
   can observe (no user argument, constant, shared value or live alias), is
   offered to the node's thunk as destroyable.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from vmc.graph.basic import Constant, SharedVariable
from vmc.ifelse import IfElse

from .program import JUMP, JUMP_IF_FALSE, MOVE, THUNK, Program, int_array


@dataclass
class Instr:
    kind: int
    node: object = None
    ins: list = field(default_factory=list)     # variables
    outs: list = field(default_factory=list)
    target: int = -1
    frees: list = field(default_factory=list)   # variables
    skip: tuple = None                          # (start, end) of the block a jump skips
    label: str = ""


# -- 1. blocks -------------------------------------------------------------------
def _contexts(order, outputs):
    """Map node -> context: the tuple of (ifelse node, branch) it runs under."""
    demand = {}   # variable -> context (longest common prefix of its readers')

    def need(var, ctx):
        old = demand.get(var)
        if old is None:
            demand[var] = ctx
        else:
            k = 0
            while k < min(len(old), len(ctx)) and old[k] == ctx[k]:
                k += 1
            demand[var] = old[:k]

    for o in outputs:
        need(o, ())
    ctx_of = {}
    for node in reversed(order):
        ctxs = [demand[o] for o in node.outputs if o in demand]
        if not ctxs:
            continue
        ctx = ctxs[0]
        for c in ctxs[1:]:
            k = 0
            while k < min(len(ctx), len(c)) and ctx[k] == c[k]:
                k += 1
            ctx = ctx[:k]
        ctx_of[node] = ctx
        if isinstance(node.op, IfElse):
            n = node.op.n_outs
            need(node.inputs[0], ctx)
            for v in node.inputs[1:1 + n]:
                need(v, ctx + ((node, "then"),))
            for v in node.inputs[1 + n:]:
                need(v, ctx + ((node, "else"),))
        else:
            for v in node.inputs:
                need(v, ctx)
    return ctx_of


def linearize(order, outputs, late=()):
    """Instructions for ``order`` with ifelse blocks; ``late`` nodes go last."""
    ctx_of = _contexts(order, outputs)
    late = [n for n in order if n in set(late) and ctx_of.get(n) == ()]
    by_ctx = {}
    for node in order:
        if node in ctx_of and node not in late:
            by_ctx.setdefault(ctx_of[node], []).append(node)
    code = []
    _emit_block((), by_ctx, code)
    for node in late:
        code.append(_thunk_instr(node))
    return code


def _thunk_instr(node):
    return Instr(THUNK, node, list(node.inputs), list(node.outputs), label=str(node.op))


def _emit_block(ctx, by_ctx, code):
    for node in by_ctx.get(ctx, []):
        if not isinstance(node.op, IfElse):
            code.append(_thunk_instr(node))
            continue
        n = node.op.n_outs
        cond, thens, elses = node.inputs[0], node.inputs[1:1 + n], node.inputs[1 + n:]
        jif = Instr(JUMP_IF_FALSE, node, [cond], label="ifelse")
        code.append(jif)
        start = len(code)
        _emit_block(ctx + ((node, "then"),), by_ctx, code)
        for t, o in zip(thens, node.outputs):
            code.append(Instr(MOVE, node, [t], [o], label="ifelse.then"))
        jmp = Instr(JUMP, node, label="ifelse.end")
        code.append(jmp)
        jif.target, jif.skip = len(code), (start, len(code))
        start = len(code)
        _emit_block(ctx + ((node, "else"),), by_ctx, code)
        for e, o in zip(elses, node.outputs):
            code.append(Instr(MOVE, node, [e], [o], label="ifelse.else"))
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
    """Map variable -> frozenset of the variables whose buffers it may share."""
    roots = {v: frozenset([v]) for v in graph_inputs}
    for node in order:
        vmap = getattr(node.op, "view_map", {}) or {}
        for i, o in enumerate(node.outputs):
            if i in vmap:
                r = frozenset()
                for j in vmap[i]:
                    r |= roots.get(node.inputs[j], frozenset([node.inputs[j]]))
                roots[o] = r
            else:
                roots[o] = frozenset([o])
    return roots


def destroyable_inputs(code, roots, protected, last_read, update_targets=None):
    """For each THUNK instruction, the input positions its thunk may overwrite."""
    update_targets = update_targets or {}
    # Every variable's last reader, grouped by root: a root is live while any
    # variable on it is still to be read.
    root_last = {}
    for v, pc in last_read.items():
        for r in roots.get(v, (v,)):
            root_last[r] = max(root_last.get(r, -1), pc)
    result = {}
    for pc, ins in enumerate(code):
        if ins.kind != THUNK:
            continue
        ok = set()
        for i, v in enumerate(ins.ins):
            vr = roots.get(v, frozenset([v]))
            allowed = update_targets.get(ins.node)
            if vr & protected and not (allowed is not None and v is allowed):
                continue
            if last_read.get(v) != pc:
                continue
            if any(root_last.get(r, -1) > pc for r in vr):
                continue
            others = [w for w in ins.ins if w is not v]
            if any(roots.get(w, frozenset([w])) & vr for w in others):
                continue
            ok.add(i)
        result[pc] = frozenset(ok)
    return result


# -- assembly ----------------------------------------------------------------------
def assemble(code, thunk_index, thunks, regs, inputs, outputs, consts, shareds, updates):
    """Flatten instructions into a Program. ``regs`` maps variable -> register;
    ``thunk_index`` maps pc -> position in ``thunks``."""
    arrays = {k: [] for k in ("kind", "thunk", "in_start", "n_in", "out_start", "n_out",
                              "free_start", "n_free", "target")}
    ins, outs, frees = [], [], []
    for pc, instr in enumerate(code):
        arrays["kind"].append(instr.kind)
        arrays["thunk"].append(thunk_index.get(pc, -1))
        arrays["in_start"].append(len(ins))
        arrays["n_in"].append(len(instr.ins))
        ins += [regs[v] for v in instr.ins]
        arrays["out_start"].append(len(outs))
        arrays["n_out"].append(len(instr.outs))
        outs += [regs[v] for v in instr.outs]
        arrays["free_start"].append(len(frees))
        fr = sorted({regs[v] for v in instr.frees})
        arrays["n_free"].append(len(fr))
        frees += fr
        arrays["target"].append(instr.target)
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
        labels=[i.label for i in code])


def is_storage(v):
    return isinstance(v, (Constant, SharedVariable))
