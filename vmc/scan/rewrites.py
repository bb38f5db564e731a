"""Rewrites of Scan nodes, registered in ``vmc.opt``'s "canonicalize" and
"constant_folding" sets (so fast_run and fast_compile both run them; exclude
them with ``Mode().excluding("scan")``).

- ``scan_save_mem``: a trace read only through ``trace[-k]`` (directly, or
  through ``trace[lag:][-k]`` as ``vmc.scan`` returns it) keeps only its last
  ``k`` entries: memory no longer grows with the number of steps (not for a
  reverse loop, which writes those entries first).
- ``scan_remove_unused``: outputs nothing reads are not computed (hidden
  records the gradient did not use, a second output of ``fn`` that is
  ignored, ...), and then the non-sequences and sequences nobody reads are
  not passed.
- ``scan_merge``: two loops over the same number of steps (the same
  ``n_steps`` variable, or the same sequence when the length is inferred)
  and in the same direction, neither reading the other, become one loop.

Hoisting loop-invariant work happens when the loop is built (see
``vmc.scan.op.build_scan``); in-place work inside the body is the body's own
scheduler's (it is compiled by the same pipeline).
"""
from __future__ import annotations

from vmc.graph.basic import Constant
from vmc.graph.traversal import ancestors, clone_get_equiv
from vmc.tensor.subtensor import Subtensor

from .op import Scan, ScanInfo

# fast_compile runs only the "constant_folding" set; keeping memory bounded and
# not computing unused outputs matter there too.
_SETS = ("canonicalize", "constant_folding")

try:
    from vmc.opt.rewriting import node_rewriter
except ImportError:          # the rewrite engine is not there: nothing registers
    def node_rewriter(*args, **kwargs):
        return lambda fn: fn


# -- keeping only the last steps ---------------------------------------------------------
def _const_int(v):
    if isinstance(v, Constant) and v.data.ndim == 0 and v.data.dtype.kind in "iu":
        return int(v.data)
    return None


def _last_index(node):
    """``j`` when ``node`` reads ``x[-j, ...]`` with a constant ``j >= 1``."""
    op = node.op
    if not isinstance(op, Subtensor) or not op.template or op.template[0] != ("int",):
        return None
    i = _const_int(node.inputs[1])
    return -i if i is not None and i < 0 else None


def _is_tail_slice(node):
    """``x[c:]`` with a constant ``c >= 0`` (what scan returns for taps)."""
    op = node.op
    if not isinstance(op, Subtensor) or len(op.template) != 1:
        return False
    return op.template[0] == ("slice", True, False, False) and \
        (_const_int(node.inputs[1]) or 0) >= 0 and _const_int(node.inputs[1]) is not None


def _needed_tail(fgraph, var):
    """The number of last entries of ``var`` its readers use, and the
    Subtensor nodes that read them (through a tail slice or directly), or
    None when some reader needs more."""
    need, readers = 0, []
    for client, i in fgraph.clients.get(var, ()):
        if client == "output" or i != 0:
            return None
        j = _last_index(client)
        if j is not None:
            need, readers = max(need, j), readers + [client]
            continue
        if not _is_tail_slice(client):
            return None
        for c2, i2 in fgraph.clients.get(client.outputs[0], ()):
            j = _last_index(c2) if c2 != "output" and i2 == 0 else None
            if j is None:
                return None
            need, readers = max(need, j), readers + [c2]
    return need, readers


@node_rewriter(_SETS, Scan, tags=("scan",))
def scan_save_mem(fgraph, node):
    op = node.op
    info = op.info
    if info.reverse:        # a reverse loop writes its last entries first
        return None
    rec_tr, nit_tr, _ = op.split_outer_outputs(node.outputs)
    keep = list(info.keep)
    readers = {}
    for k, var in enumerate(rec_tr + nit_tr):
        if keep[k] > 0:
            continue
        if not fgraph.clients.get(var):
            keep[k] = 1          # nothing reads the trace: keep the smallest one
            continue
        found = _needed_tail(fgraph, var)
        if found is None or found[0] == 0:
            continue
        keep[k], readers[k] = found
    if tuple(keep) == info.keep:
        return None
    new = op.with_info(keep=tuple(keep)).make_node(*node.inputs)
    new.trace = node.trace
    out = {}
    for k, (old, nv) in enumerate(zip(node.outputs, new.outputs)):
        if k in readers:
            for sub in readers[k]:
                out[sub.outputs[0]] = Subtensor(sub.op.template)(nv, *sub.inputs[1:])
        else:
            out[old] = nv
    return out


# -- dropping what nobody reads ------------------------------------------------------------
def _used_outputs(fgraph, node):
    return [bool(fgraph.clients.get(o)) for o in node.outputs]


def _prune_plan(op, used):
    """Which recs, nits and carries to keep: those read outside, and those
    whose values the kept ones read inside the loop."""
    info = op.info
    i_seqs, i_taps, i_carries, i_nonseqs = op.split_inner_inputs()
    o_recs, o_nits, o_carries, cond = op.split_inner_outputs()
    ur, un, uc = op.split_outer_outputs(used)
    keep_rec, keep_nit, keep_car = list(ur), list(un), list(uc)
    while True:
        roots = ([o for o, k in zip(o_recs, keep_rec) if k] + [o for o, k in zip(o_nits, keep_nit)
                                                               if k]
                 + [o for o, k in zip(o_carries, keep_car) if k]
                 + ([cond] if cond is not None else []))
        read = set(ancestors(roots))
        changed = False
        for k, taps in enumerate(i_taps):
            if not keep_rec[k] and any(t in read for t in taps):
                keep_rec[k] = changed = True
        for m, c in enumerate(i_carries):
            if not keep_car[m] and c in read:
                keep_car[m] = changed = True
        if not changed:
            break
    keep_ns = [v in read for v in i_nonseqs]
    keep_seq = [v in read or info.infer_steps for v in i_seqs]
    return keep_seq, keep_rec, keep_nit, keep_car, keep_ns


@node_rewriter(_SETS, Scan, tags=("scan",))
def scan_remove_unused(fgraph, node):
    op = node.op
    plan = _prune_plan(op, _used_outputs(fgraph, node))
    keep_seq, keep_rec, keep_nit, keep_car, keep_ns = plan
    if all(all(p) for p in plan):
        return None
    if not (any(keep_rec) or any(keep_nit) or any(keep_car)):
        return None          # nothing left to compute: the dead-code pass removes it
    info = op.info
    n_steps, seqs, inits, cinits, nonseqs = op.split_outer_inputs(node.inputs)
    i_seqs, i_taps, i_carries, i_nonseqs = op.split_inner_inputs()
    o_recs, o_nits, o_carries, cond = op.split_inner_outputs()

    def pick(xs, flags):
        return [x for x, f in zip(xs, flags) if f]
    n_hidden_kept = sum(keep_nit[info.n_nit - info.n_hidden:])
    traces_keep = keep_rec + keep_nit
    new_info = ScanInfo(
        n_seqs=sum(keep_seq), rec_taps=tuple(pick(info.rec_taps, keep_rec)),
        n_nit=sum(keep_nit), n_hidden=n_hidden_kept, n_carry=sum(keep_car),
        n_nonseq=sum(keep_ns), until=info.until, keep=tuple(pick(info.keep, traces_keep)),
        infer_steps=info.infer_steps, truncate_gradient=info.truncate_gradient,
        name=info.name, mode=info.mode, reverse=info.reverse)
    inner_in = (pick(i_seqs, keep_seq) + [v for t in pick(i_taps, keep_rec) for v in t]
                + pick(i_carries, keep_car) + pick(i_nonseqs, keep_ns))
    inner_out = (pick(o_recs, keep_rec) + pick(o_nits, keep_nit) + pick(o_carries, keep_car)
                 + ([cond] if cond is not None else []))
    labels = dict(op.labels)
    for key, flags in (("seqs", keep_seq), ("outs", traces_keep), ("carries", keep_car)):
        if key in labels and len(labels[key]) == len(flags):
            labels[key] = pick(labels[key], flags)
    new_op = Scan(inner_in, inner_out, new_info, labels)
    new = new_op.make_node(n_steps, *pick(seqs, keep_seq), *pick(inits, keep_rec),
                           *pick(cinits, keep_car), *pick(nonseqs, keep_ns))
    new.trace = node.trace
    rec_tr, nit_tr, fin = op.split_outer_outputs(node.outputs)
    olds = pick(rec_tr, keep_rec) + pick(nit_tr, keep_nit) + pick(fin, keep_car)
    return {old: nv for old, nv in zip(olds, new.outputs)}


# -- merging loops over the same steps --------------------------------------------------------
def _merge_key(node):
    op = node.op
    info = op.info
    if info.until:
        return None
    n_steps, seqs, _, _, _ = op.split_outer_inputs(node.inputs)
    if info.infer_steps:
        return ("infer", frozenset(seqs), info.reverse) if seqs else None
    return ("n", n_steps, info.reverse)


@node_rewriter(_SETS, Scan, tags=("scan",))
def scan_merge(fgraph, node):
    key = _merge_key(node)
    if key is None:
        return None
    for other in _candidates(fgraph, node):
        okey = _merge_key(other)
        if okey is None or (okey[0], okey[2]) != (key[0], key[2]):
            continue
        if key[0] == "n" and okey[1] is not key[1]:
            continue
        if key[0] == "infer" and not (key[1] & okey[1]):
            continue
        a, b = other.op, node.op
        if (a.info.truncate_gradient, a.info.mode) != (b.info.truncate_gradient, b.info.mode):
            continue
        if _reads(node, other) or _reads(other, node):
            continue
        if not _same_branch(fgraph, node, other):
            continue
        return _merged(other, node)
    return None


def _same_branch(fgraph, a, b):
    """Both nodes run under the same ifelse branches: merging must not make
    a loop that only a branch needs run whenever the other one does."""
    from vmc.graph.branches import branch_contexts
    ctx = branch_contexts(fgraph.toposort(), fgraph.outputs)[1]
    return ctx.get(a) == ctx.get(b)


def _candidates(fgraph, node):
    seen = []
    n_steps = node.inputs[0]
    pool = list(fgraph.clients.get(n_steps, ()))
    if node.op.info.infer_steps:
        for s in node.op.split_outer_inputs(node.inputs)[1]:
            pool += list(fgraph.clients.get(s, ()))
    for client, _ in pool:
        if client != "output" and client is not node and isinstance(client.op, Scan) \
                and client in fgraph.apply_nodes and client not in seen:
            seen.append(client)
    return seen


def _reads(a, b):
    """True when node ``a`` depends on an output of node ``b``."""
    outs = set(b.outputs)
    return any(v in outs for v in ancestors(a.inputs))


def _lifted(node):
    """The loop of ``node`` in ``build_scan``'s terms, its body reading the
    outer non-sequences directly. The body is a copy with inner inputs of its
    own: two loops made from one (a loop and its copy in a gradient, each
    rewritten alike) share their inner input variables, and a merged body
    must not take one variable as two inputs."""
    op = node.op
    _, seqs, inits, cinits, nonseqs = op.split_outer_inputs(node.inputs)
    i_seqs, i_taps, i_carries, i_nonseqs = op.split_inner_inputs()
    fresh = {v: v.clone() for v in [*i_seqs, *(t for ts in i_taps for t in ts), *i_carries]}
    i_seqs = [fresh[v] for v in i_seqs]
    i_taps = [[fresh[t] for t in ts] for ts in i_taps]
    i_carries = [fresh[v] for v in i_carries]
    memo = dict(zip(i_nonseqs, nonseqs))
    memo.update(fresh)
    memo = clone_get_equiv(list(memo), op.inner_outputs, copy_inputs=False, memo=memo)
    o_recs, o_nits, o_carries, cond = op.split_inner_outputs([memo[o] for o in op.inner_outputs])
    recs = [(list(zip(t, taps)), init, o)
            for t, taps, init, o in zip(op.info.rec_taps, i_taps, inits, o_recs)]
    return (list(zip(i_seqs, seqs)), recs, o_nits, list(zip(i_carries, cinits, o_carries)))


def _merged(a, b):
    from .op import build_scan
    sa, ra, na, ca = _lifted(a)
    sb, rb, nb, cb = _lifted(b)
    ia, ib = a.op.info, b.op.info
    la, lb = a.op.labels, b.op.labels
    labels = {k: list(la.get(k, [])) + list(lb.get(k, [])) for k in ("seqs", "carries")}
    labels["outs"] = (la.get("outs", [])[:ia.n_rec] + lb.get("outs", [])[:ib.n_rec]
                      + la.get("outs", [])[ia.n_rec:] + lb.get("outs", [])[ib.n_rec:])
    n_steps = None if ia.infer_steps else a.inputs[0]
    rec, nit, fin = build_scan(sa + sb, ra + rb, na + nb, ca + cb, n_steps, None,
                               truncate_gradient=ia.truncate_gradient,
                               name=f"{a.op.name}+{b.op.name}", mode=ia.mode, labels=labels,
                               record=False, keep=ia.keep[:ia.n_rec] + ib.keep[:ib.n_rec]
                               + ia.keep[ia.n_rec:] + ib.keep[ib.n_rec:], reverse=ia.reverse)
    ra_tr, na_tr, fa = a.op.split_outer_outputs(a.outputs)
    rb_tr, nb_tr, fb = b.op.split_outer_outputs(b.outputs)
    olds = ra_tr + rb_tr + na_tr + nb_tr + fa + fb
    return dict(zip(olds, rec + nit + fin))
