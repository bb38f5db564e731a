"""The gradient of a Scan: back-propagation through time, as a second Scan.

The backward loop runs over the forward steps in reverse, from ``n - 1`` down
to ``t0`` (``t0 = max(0, n - truncate_gradient)``, else 0): it is a reverse
Scan (``ScanInfo.reverse``; the gradient of a reverse Scan runs forward). At
forward step ``t`` it needs the step's inputs and outputs, which it reads
from the forward traces (passed as sequences, entry ``t - t0``), never by
re-running the forward step: only the pullbacks of the inner graph run. Its
state:

- ``P[k][j]``, for each recurrent output ``k`` of lag ``L`` and ``j < L``: the
  gradient accumulated so far for ``y_k`` at step ``t - j`` from later steps'
  taps. The total gradient of ``y_k[t]`` is its external gradient plus
  ``P[k][0]``; after the step, ``P'[k][j] = P[k][j + 1] + d(tap -(j+1))``.
  What is left after step ``t0 = 0`` is the gradient of the initial values.
- ``Q[m]`` for each float carry: the gradient of the carry's value after
  step ``t``; after the step, the gradient of its value before it.
- ``acc[p]`` for each float non-sequence: the sum of its gradients.

The sequences' gradients are the backward loop's per-step outputs.
Carries' values and random draws are not in the traces; the forward Scan
records them in hidden outputs (see ``build_scan``), and the backward step
reads those.
"""
from __future__ import annotations

from vmc.graph import basic as graph_basic
from vmc.graph.basic import Constant, Variable
from vmc.graph.grad import NullGradient, grad
from vmc.graph.traversal import ancestors, clone_get_equiv
from vmc.tensor.shape import alloc_like

from .utils import broadcast_row, is_float_tensor, is_zero_grad, placeholder, tail_grad


def scan_pullback(op, inputs, outputs, output_grads):
    info = op.info
    if any(k > 0 for k in info.keep):
        why = f"{op} keeps only the last steps of its outputs; differentiate before rewriting"
        return [None] + [NullGradient(why) if is_float_tensor(v) else None
                         for v in inputs[1:]]
    # The backward loop is built on placeholders that have no test values
    # (config.compute_test_value); its outer results get theirs afterwards.
    with graph_basic.without_test_values():
        ctx = _Context(op, inputs, outputs, output_grads)
        if ctx.n is None:
            return [None] * len(inputs)
        grads = ctx.build()
    graph_basic.fill_test_values([g for g in grads if g is not None])
    return grads


class _Context:
    """The pieces of one backward scan, built step by step (see module doc)."""

    def __init__(self, op, inputs, outputs, output_grads):
        import vmc.tensor as vt
        self.vt = vt
        self.op, self.info = op, op.info
        self.inputs = list(inputs)
        (self.n_steps_in, self.seqs, self.inits, self.carry_inits,
         self.nonseqs) = op.split_outer_inputs(inputs)
        self.rec_tr, self.nit_tr, self.finals = op.split_outer_outputs(outputs)
        g = [None if is_zero_grad(x) else x for x in output_grads]
        self.g_rec, self.g_nit, self.g_fin = op.split_outer_outputs(g)
        self.g_head = list(self.g_rec)   # what reaches the initial values from outside
        self.i_seqs, self.i_taps, self.i_carries, self.i_nonseqs = op.split_inner_inputs()
        self.o_recs, self.o_nits, self.o_carries, _ = op.split_inner_outputs()
        self.lags = self.info.lags
        self.n = self._steps_run()
        k = self.info.truncate_gradient
        if self.n is not None:
            self.t0 = vt.maximum(self.n - k, 0) if k is not None and k > 0 else 0
        self.bwd_seqs = []     # (backward placeholder, outer sequence)
        self.replace = {}      # forward inner variable -> backward placeholder / outer

    def _steps_run(self):
        vt = self.vt
        if self.rec_tr:
            return vt.shape_i(self.rec_tr[0], 0) - self.lags[0]
        if self.nit_tr:
            return vt.shape_i(self.nit_tr[0], 0)
        if self.info.until:
            return None
        if self.info.infer_steps:
            return vt.shape_i(self.seqs[0], 0) if self.seqs else None
        return self.n_steps_in

    def window(self, x, offset):
        """``x[offset + t0 : offset + n]``: what the backward loop reads, entry
        ``t - t0`` at forward step ``t`` (it runs the steps in the opposite
        order, by ``reverse``, so no reversed view is needed)."""
        start = offset + self.t0
        if isinstance(start, int) and start == 0:
            start = None
        return x[start: offset + self.n]

    def seq_in(self, fwd_var, outer, offset, name):
        """A backward placeholder for ``fwd_var``, fed by ``outer`` from ``offset``."""
        p = placeholder(fwd_var.type, name)
        self.bwd_seqs.append((p, self.window(outer, offset)))
        return p

    def row_in(self, row, name):
        """A backward placeholder for the outer value ``row`` (None for None),
        read by every step as a non-sequence. (A placeholder, so that the
        clone of the step's graph stops there instead of copying the outer
        graph that ``row`` depends on, the forward loop included.)"""
        if row is None:
            return None
        p = placeholder(row.type, name)
        self.replace[p] = row
        return p

    # -- the backward step ---------------------------------------------------------
    def build(self):
        vt = self.vt
        known, P, Q = self._cotangents()
        if not known:
            return [None] * len(self.inputs)
        wrt, where = self._wrt()
        grads = grad(None, wrt, known_grads=known, disconnected_inputs="ignore",
                     return_disconnected="none") if wrt else []
        d = dict(zip(where, grads))
        new_P = []
        for k, Pk in enumerate(P):
            if Pk is None:
                new_P.append(None)
                continue
            lag, taps = self.lags[k], self.info.rec_taps[k]
            row = []
            for j in range(lag):
                terms = [Pk[j + 1]] if j + 1 < lag else []
                tap = -(j + 1)
                if tap in taps:
                    g = d.get(("tap", k, taps.index(tap)))
                    if g is not None:
                        terms.append(g)
                row.append(_sum(terms) if terms else vt.zeros_like(Pk[j]))
            new_P.append(row)
        new_Q = []
        for m, q in enumerate(Q):
            g = d.get(("carry", m))
            new_Q.append(None if q is None else (g if g is not None else vt.zeros_like(q)))
        accs = []
        for p, v in enumerate(self.i_nonseqs):
            g = d.get(("nonseq", p))
            accs.append(None if g is None else (placeholder(v.type, f"acc_{v.name or p}"), g))
        d_seqs = [d.get(("seq", j)) for j in range(len(self.i_seqs))]
        self._map_forward_values()
        return self._assemble(P, new_P, Q, new_Q, accs, d_seqs)

    def _cotangents(self):
        """Placeholders for the gradients reaching the inner outputs at step t."""
        known, P, Q = {}, [], []

        def add(var, g):
            if isinstance(var, Constant):
                return
            known[var] = known[var] + g if var in known else g
        for k, o in enumerate(self.o_recs):
            if not is_float_tensor(o) or not is_float_tensor(self.rec_tr[k]):
                P.append(None)
                continue
            st = self.i_taps[k][0].type
            Pk = [placeholder(st, f"P{k}_{j}") for j in range(self.lags[k])]
            P.append(Pk)
            cot = Pk[0]
            g, offset = self.g_rec[k], self.lags[k]
            if g is not None:
                tail = tail_grad(g, offset)
                if tail is not None:        # nothing reaches the initial values
                    g, offset, self.g_head[k] = tail, 0, None
                # P has the step's shape: a broadcast row adds to it as is
                G = self.row_in(broadcast_row(g), f"g_out{k}")
                if G is None:
                    G = self.seq_in(self.i_taps[k][0], g, offset, f"g_out{k}")
                cot = cot + G
            add(o, cot)
        for l, o in enumerate(self.o_nits):
            if self.g_nit[l] is not None and is_float_tensor(o):
                row = self.row_in(broadcast_row(self.g_nit[l]), f"g_nit{l}")
                add(o, alloc_like(row, o) if row is not None
                    else self.seq_in(o, self.g_nit[l], 0, f"g_nit{l}"))
        for m, o in enumerate(self.o_carries):
            if not is_float_tensor(o):
                Q.append(None)
                continue
            q = placeholder(self.i_carries[m].type, f"Q{m}")
            Q.append(q)
            add(o, q)
        return known, P, Q

    def _wrt(self):
        """The inner inputs to differentiate, with keys naming what each is."""
        wrt, where = [], []
        for j, v in enumerate(self.i_seqs):
            if is_float_tensor(v) and is_float_tensor(self.seqs[j]):
                wrt.append(v)
                where.append(("seq", j))
        for k, taps in enumerate(self.i_taps):
            for i, v in enumerate(taps):
                if is_float_tensor(v):
                    wrt.append(v)
                    where.append(("tap", k, i))
        for m, v in enumerate(self.i_carries):
            if is_float_tensor(v):
                wrt.append(v)
                where.append(("carry", m))
        for p, v in enumerate(self.i_nonseqs):
            if is_float_tensor(v) and is_float_tensor(self.nonseqs[p]):
                wrt.append(v)
                where.append(("nonseq", p))
        return wrt, where

    def _map_forward_values(self):
        """Forward values at step t, read from the traces instead of recomputed."""
        r = self.replace
        for j, v in enumerate(self.i_seqs):
            r[v] = self.seq_in(v, self.seqs[j], 0, v.name)
        for k, taps in enumerate(self.i_taps):
            lag = self.lags[k]
            for tap, v in zip(self.info.rec_taps[k], taps):
                r[v] = self.seq_in(v, self.rec_tr[k], lag + tap, v.name)
        for k, o in enumerate(self.o_recs):
            if o.owner is not None and o not in r:
                r[o] = self.seq_in(o, self.rec_tr[k], self.lags[k], f"y{k}")
        for l, o in enumerate(self.o_nits):
            if not isinstance(o, Constant) and o not in r:
                r[o] = self.seq_in(o, self.nit_tr[l], 0, f"z{l}")
        for p, v in enumerate(self.i_nonseqs):
            r[v] = self.nonseqs[p]

    def _assemble(self, P, new_P, Q, new_Q, accs, d_seqs):
        from .op import build_scan
        vt = self.vt
        carries, exprs = [], []
        for k, Pk in enumerate(P):
            if Pk is None:
                continue
            zero = vt.zeros_like(self.inits[k][0])
            for j in range(len(Pk)):
                carries.append((Pk[j], zero, new_P[k][j]))
        for m, q in enumerate(Q):
            if q is not None:
                init = self.g_fin[m] if self.g_fin[m] is not None \
                    else vt.zeros_like(self.carry_inits[m])
                carries.append((q, init, new_Q[m]))
        for p, a in enumerate(accs):
            if a is not None:
                carries.append((a[0], vt.zeros_like(self.nonseqs[p]), a[0] + a[1]))
        nit_idx = [j for j, g in enumerate(d_seqs) if g is not None]
        exprs = [c[2] for c in carries] + [d_seqs[j] for j in nit_idx]
        memo = clone_get_equiv(list(self.replace), exprs, copy_inputs=False,
                               memo=dict(self.replace))
        exprs = [memo[e] for e in exprs]
        stuck = _unreachable_forward_inputs(self.op, exprs, self.nonseqs)
        if stuck:
            why = (f"the gradient of {self.op} needs {stuck[0]!r} ({stuck[0].type}) at each "
                   f"step, which the loop does not record")
            return [None] + [NullGradient(why) if is_float_tensor(v) else None
                             for v in self.inputs[1:]]
        carries = [(c[0], c[1], e) for c, e in zip(carries, exprs)]
        nits = exprs[len(carries):]
        used = set(ancestors(exprs, blockers=self.nonseqs))
        seqs = [(p, o) for p, o in self.bwd_seqs if p in used]
        _, nit_tr, finals = build_scan(
            seqs, [], nits, carries, self.n - self.t0, None,
            name=f"grad_of_{self.op.name}", mode=self.info.mode,
            reverse=not self.info.reverse)
        return self._input_grads(P, Q, accs, nit_idx, nit_tr, finals)

    def _input_grads(self, P, Q, accs, nit_idx, nit_tr, finals):
        vt = self.vt
        out = [None] * len(self.inputs)
        _, si, ri, ci, ni = _offsets(self.info)
        keep_init = None if isinstance(self.t0, int) else vt.eq(self.t0, 0)

        def masked(g):
            return g if keep_init is None else vt.switch(keep_init, g, vt.zeros_like(g))
        f = iter(finals)
        for k, Pk in enumerate(P):
            if Pk is None:
                continue
            rows = [next(f) for _ in Pk]
            lag = self.lags[k]
            init = self.inits[k]
            block = vt.stack([rows[lag - 1 - r] for r in range(lag)])
            block = masked(block)
            if init.type.shape[0] != lag:
                block = vt.set_subtensor(vt.zeros_like(init)[:lag], block)
            if self.g_head[k] is not None:
                block = block + self.g_head[k][:lag] if init.type.shape[0] == lag else \
                    vt.inc_subtensor(block[:lag], self.g_head[k][:lag])
            out[ri + k] = block
        for m, q in enumerate(Q):
            if q is not None:
                out[ci + m] = masked(next(f))
        for p, a in enumerate(accs):
            if a is not None:
                out[ni + p] = next(f)
        from vmc.ifelse import ifelse
        start = None if isinstance(self.t0, int) and self.t0 == 0 else self.t0
        ran = vt.gt(self.n - self.t0, 0)
        # The steps cover the whole sequence: its length decided their number.
        whole = self.info.infer_steps and not self.info.until and start is None
        for j, tr in zip(nit_idx, nit_tr):
            zeros = vt.zeros_like(self.seqs[j])
            full = tr if whole else vt.set_subtensor(zeros[start:self.n], tr)
            # Lazy: after zero steps the trace's row shape is unknown (0, ...).
            out[si + j] = ifelse(ran, full, zeros)
        return out


def _offsets(info):
    si = 1
    ri = si + info.n_seqs
    ci = ri + info.n_rec
    ni = ci + info.n_carry
    return 0, si, ri, ci, ni


def _unreachable_forward_inputs(op, exprs, outer):
    """Forward inner inputs still read after the replacements (a carry that is
    not recorded, e.g. a random generator whose draw is not recorded)."""
    fwd = set(op.inner_inputs)
    return [v for v in ancestors(exprs, blockers=outer) if v in fwd]


def _sum(terms):
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def jacobian(expression, wrt, consider_constant=None, disconnected_inputs="raise"):
    """The Jacobian of the vector ``expression`` w.r.t. ``wrt`` (a variable or
    a list), one row per element, computed by a scan over the rows (for
    expressions whose length is only known at run time)."""
    import vmc.tensor as vt
    from .basic import scan
    single = isinstance(wrt, Variable)
    wrts = [wrt] if single else list(wrt)
    expression = vt.as_tensor_variable(expression)

    def row(i):
        return [grad(expression[i], w, consider_constant=consider_constant,
                     disconnected_inputs=disconnected_inputs) for w in wrts]
    outs, _ = scan(row, sequences=vt.arange(vt.shape_i(expression, 0)), return_list=True,
                   name="jacobian")
    return outs[0] if single else outs
