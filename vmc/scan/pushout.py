"""Moving matrix products out of the loop body, when a loop is built.

Three patterns, each turning one matrix product per step into one product
over all steps (a single large GEMM outside the loop, which BLAS runs far
better than many small ones):

- **sequence products**: ``dot(x_t, W)`` with ``x_t`` a sequence row and
  ``W`` loop-invariant becomes a new sequence ``dot(X, W)`` (a vector row, or
  a matrix row through a reshape to 2-d and back). An RNN's input projection.
- **accumulated products**: a carry updated as ``acc + dot(a_t.T, b_t) +
  rest`` (what back-propagation through time produces for a weight
  gradient), where ``acc`` is read nowhere else: the loop records ``a_t``
  and ``b_t`` (unless they are sequences already) and the final value is
  ``acc_0 + dot(A.T, B)`` over all steps (plus what ``rest`` accumulated).
- **output products**: an output not fed back, ``dot(v_t, W)`` with ``W``
  loop-invariant and read nowhere else in the body: the loop records ``v_t``
  and the output is ``dot(V, W)``.

Only work the body always does is moved (never work inside a lazy ifelse
branch), so no error can surface that the loop would not have raised.
"""
from __future__ import annotations

from vmc.graph.traversal import clone_get_equiv, toposort
from vmc.ifelse import IfElse
from vmc.tensor.elemwise import DimShuffle, Elemwise
from vmc.tensor.math import Dot

from .utils import is_float_tensor, placeholder


class _Body:
    """Facts about a loop body: which variables vary per step, which are
    always computed (not only inside a lazy branch), and who reads what."""

    def __init__(self, outputs, placeholders):
        self.outputs = list(outputs)
        self.depends = set(placeholders)
        order = toposort(outputs, blockers=self.depends)
        self.nodes = []
        for node in order:
            if any(v in self.depends for v in node.inputs):
                self.depends.update(node.outputs)
                self.nodes.append(node)
        self.eager = set(outputs)
        for node in reversed(self.nodes):
            if not any(o in self.eager for o in node.outputs):
                continue
            if isinstance(node.op, IfElse):
                self.eager.add(node.inputs[0])
            else:
                self.eager.update(node.inputs)
        self.readers = {}
        for node in self.nodes:
            for v in node.inputs:
                self.readers.setdefault(v, []).append(node)

    def varies(self, v):
        return v in self.depends

    def n_readers(self, v):
        return len(self.readers.get(v, ())) + sum(o is v for o in self.outputs)


def _matrix(v):
    return v.type.ndim == 2


def _transposed(v):
    """``a`` when ``v`` is ``a.T`` of a matrix ``a``."""
    node = v.owner
    if node is not None and isinstance(node.op, DimShuffle) and node.op.new_order == (1, 0):
        return node.inputs[0]
    return None


def _is_add(v):
    node = v.owner
    return node is not None and isinstance(node.op, Elemwise) and \
        node.op.scalar_op.name == "add"


def _batched_dot(X, W):
    """``dot`` of every row ``X[t]`` (a vector or a matrix) with ``W``, stacked."""
    import vmc.tensor as vt
    if X.type.ndim == 2:
        return vt.dot(X, W)
    n, b = vt.shape_i(X, 0), vt.shape_i(X, 1)
    flat = vt.dot(vt.reshape(X, (-1, vt.shape_i(X, 2))), W)
    if W.type.ndim == 1:
        return vt.reshape(flat, (n, b))
    return vt.reshape(flat, (n, b, vt.shape_i(W, 1)))


def _sum_of_products(A, B):
    """``sum_t dot(A[t].T, B[t])`` for stacks of matrices: one product."""
    import vmc.tensor as vt
    a2 = vt.reshape(A, (-1, vt.shape_i(A, 2)))
    b2 = vt.reshape(B, (-1, vt.shape_i(B, 2)))
    return vt.dot(a2.T, b2)


def push_out(seqs, recs, nits, carries, cond, n_steps):
    """Apply the three patterns to a loop given as ``build_scan``'s lists.

    Returns ``(seqs, recs, nits, carries, post)``; ``post(rec_traces,
    nit_traces, finals)`` turns the outputs of the loop built from the new
    lists into the outputs the caller expects for the old ones.
    """
    seqs, carries = list(seqs), list(carries)
    seqs, recs, nits, carries, cond = _push_sequence_products(
        seqs, recs, nits, carries, cond, n_steps)
    rec_outs = [o for _, _, o in recs]
    placeholders = ([s for s, _ in seqs] + [v for taps, _, _ in recs for _, v in taps]
                    + [c for c, _, _ in carries])
    outs = rec_outs + list(nits) + [o for _, _, o in carries] + ([cond] if cond is not None
                                                                 else [])
    body = _Body(outs, placeholders)
    seq_outer = {s: o for s, o in seqs}
    records, record_index = [], {}

    def record(v):
        if v not in record_index:
            record_index[v] = len(nits) + len(records)
            records.append(v)
        return record_index[v]

    nit_plan = []
    for o in nits:
        plan = _output_product(o, body, rec_outs, [c for _, _, c in carries])
        nit_plan.append(("trace", None) if plan is None else ("dot", (record(plan[0]), plan[1])))
    new_carries, carry_plan = [], []
    for c, c0, o in carries:
        plan = _accumulated_products(c, o, body, cond)
        if plan is None:
            carry_plan.append(("carry", len(new_carries), c0, []))
            new_carries.append((c, c0, o))
            continue
        rest, products = plan
        factors = [tuple(("seq", seq_outer[f]) if f in seq_outer else ("rec", record(f))
                         for f in pair) for pair in products]
        if rest is None:
            carry_plan.append(("done", None, c0, factors))
        else:
            carry_plan.append(("carry", len(new_carries), c0, factors))
            new_carries.append((c, c0, rest))
    kept_nits = [o for o, (kind, _) in zip(nits, nit_plan) if kind == "trace"]
    index_of = {}                          # caller's nit -> position among kept_nits
    for l, (kind, _) in enumerate(nit_plan):
        if kind == "trace":
            index_of[l] = len(index_of)
    extra = [v for v in records if v not in kept_nits]
    final_nits = kept_nits + extra
    base = len(final_nits)
    remap = {record_index[v]: final_nits.index(v) for v in records}
    def post(rec_tr, nit_tr, finals):
        def recorded(i):
            return nit_tr[remap[i]]
        out_nits = []
        for l, (kind, plan) in enumerate(nit_plan):
            if kind == "trace":
                out_nits.append(nit_tr[index_of[l]])
            else:
                i, W = plan
                out_nits.append(_batched_dot(recorded(i), W))
        out_fin = []
        for kind, m, c0, factors in carry_plan:
            total = finals[m] if kind == "carry" else c0
            for fa, fb in factors:
                A, B = (f[1] if f[0] == "seq" else recorded(f[1]) for f in (fa, fb))
                n = _steps_of(fa, fb, recorded)
                total = total + _sum_of_products(A[:n], B[:n])
            out_fin.append(total)
        return rec_tr, out_nits + list(nit_tr[base:]), out_fin

    return seqs, recs, final_nits, new_carries, cond, post


def _steps_of(fa, fb, recorded):
    """The number of steps run, from a recorded factor's trace."""
    import vmc.tensor as vt
    for f in (fa, fb):
        if f[0] == "rec":
            return vt.shape_i(recorded(f[1]), 0)
    raise AssertionError("an accumulated product needs a recorded factor")


# -- the patterns --------------------------------------------------------------------------
def _push_sequence_products(seqs, recs, nits, carries, cond, n_steps):
    placeholders = ([s for s, _ in seqs] + [v for taps, _, _ in recs for _, v in taps]
                    + [c for c, _, _ in carries])
    outs = [o for _, _, o in recs] + list(nits) + [o for _, _, o in carries] + \
        ([cond] if cond is not None else [])
    body = _Body(outs, placeholders)
    seq_outer = dict(seqs)
    replace = {}
    for node in body.nodes:
        if not isinstance(node.op, Dot) or node.outputs[0] not in body.eager:
            continue
        s, W = node.inputs
        if s not in seq_outer or body.varies(W) or W.type.ndim not in (1, 2) \
                or s.type.ndim not in (1, 2) or (s.type.ndim == 1 and W.type.ndim == 1):
            continue
        X = seq_outer[s]
        if n_steps is not None:
            X = X[:n_steps]
        q = placeholder(node.outputs[0].type, f"{s.name or 'x'}_dot")
        seqs.append((q, _batched_dot(X, W)))
        replace[node.outputs[0]] = q
    if not replace:
        return seqs, recs, nits, carries, cond
    memo = clone_get_equiv(list(replace), outs, copy_inputs=False, memo=dict(replace))
    outs = [memo[o] for o in outs]
    n_rec, n_nit = len(recs), len(nits)
    recs = [(taps, init, o) for (taps, init, _), o in zip(recs, outs[:n_rec])]
    nits = outs[n_rec:n_rec + n_nit]
    carries = [(c, c0, o) for (c, c0, _), o in zip(carries, outs[n_rec + n_nit:])]
    cond = outs[-1] if cond is not None else None
    return seqs, recs, nits, carries, cond


def _accumulated_products(c, o, body, cond):
    """``(rest, [(a, b), ...])`` when ``o = c + sum(dot(a.T, b)) + rest``
    with ``c`` read only there; ``rest`` is the new update (``c + ...``) or
    None when nothing else accumulates."""
    if not is_float_tensor(c) or not _matrix(c) or o is c or body.n_readers(c) != 1:
        return None
    terms, stack = [], [o]
    while stack:
        v = stack.pop()
        if _is_add(v) and (v is o or body.n_readers(v) == 1):
            stack.extend(reversed(v.owner.inputs))
        else:
            terms.append(v)
    if sum(t is c for t in terms) != 1:
        return None
    products, rest = [], []
    for t in terms:
        pair = _product_term(t, c, body) if t is not c else None
        if pair is None:
            if t is not c:
                rest.append(t)
        else:
            products.append(pair)
    if not products:
        return None
    if not rest:
        return None, products
    total = c
    for t in rest:
        total = total + t
    return total, products


def _product_term(t, c, body):
    """``(a, b)`` when ``t = dot(a.T, b)`` with ``a``, ``b`` matrices that vary
    per step (sequence rows or values of the step) and do not read ``c``."""
    node = t.owner
    if node is None or not isinstance(node.op, Dot):
        return None
    left, b = node.inputs
    a = _transposed(left)
    if a is None or not (_matrix(a) and _matrix(b)):
        return None
    # (Neither factor reads c: c's only reader is an add of the chain.)
    if not (body.varies(a) and body.varies(b)) or t not in body.eager:
        return None
    return a, b


def _output_product(o, body, rec_outs, carry_outs):
    """``(v, W)`` when the output ``o = dot(v, W)``, ``W`` invariant, and the
    body reads ``o`` nowhere else."""
    node = o.owner
    if node is None or not isinstance(node.op, Dot) or not is_float_tensor(o):
        return None
    v, W = node.inputs
    if body.varies(W) or not body.varies(v) or v.type.ndim not in (1, 2) or W.type.ndim != 2:
        return None
    if body.n_readers(o) != 1 or o in rec_outs or o in carry_outs:
        return None
    return v, W
