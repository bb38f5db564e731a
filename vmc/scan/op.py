"""The Scan op: a loop whose body is an inner graph, and the builder that makes one.

Layout (each list in this order; the names are used throughout vmc/scan)::

    outer inputs : n_steps, seqs..., rec inits..., carry inits..., nonseqs...
    outer outputs: rec traces..., nit traces..., carry finals...
    inner inputs : seq slices..., rec taps..., carries..., nonseqs...
    inner outputs: rec outs..., nit outs..., carry outs..., [cond]

- **seqs**: step ``t`` reads ``seq[t]``. Taps on user sequences and
  ``go_backwards`` are resolved outside the op by slicing and reversing, so
  each op sequence has one tap, 0.
- **rec** (recurrent outputs, Theano's sit_sot and mit_sot): output ``k``
  has taps ``info.rec_taps[k]`` (negative), lag ``L = -min(taps)``. Its outer
  init holds the ``L`` values before step 0 (shape ``(L, ...)``); its trace is
  ``init`` followed by every step's value (``L + n_steps`` entries), or only
  the last ``info.keep[k]`` entries when the memory rewrite found that only
  those are read.
- **nit** (outputs not fed back): a trace of ``n_steps`` entries (or the last
  ``keep``). The last ``info.n_hidden`` are hidden: they record inner values
  (carries, random draws) that the gradient needs and cannot recompute.
- **carry**: state of any type threaded through the steps whose final value
  only is returned: shared variables updated inside the loop and random
  generators.
- **nonseqs**: loop invariants, found automatically: every variable the body
  reads that does not depend on a step input (so invariant work is hoisted).
- **cond** (with ``until``): the loop stops after the first step where it is true.

With ``info.reverse`` the steps run from ``t = n_steps - 1`` down to 0: step
``t`` still reads ``seq[t]`` and writes entry ``t`` of each trace, so traces
come out in index order. Back-propagation through time is such a loop; it
then reads the forward traces and writes the sequences' gradients without
reversed views, which would cost a copy wherever a matrix product takes a
whole trace (the push-outs). A reverse loop has no recurrent outputs (its
state is carries), no ``until``, and keeps whole traces.

``n_steps`` is an int64 scalar; ``info.infer_steps`` means it was not given
and the sequences' lengths (which must agree) decide it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace as dc_replace

from vmc.graph.basic import Apply, Constant, Op, SharedVariable
from vmc.graph.traversal import clone_get_equiv, graph_inputs
from vmc.graph.type import TensorType

from .utils import inner_nodes, is_float_tensor, is_tensor, placeholder, stacked_type


@dataclass(frozen=True)
class ScanInfo:
    n_seqs: int
    rec_taps: tuple            # per recurrent output: its taps, in inner-input order
    n_nit: int                 # outputs not fed back, hidden records included (last)
    n_hidden: int
    n_carry: int
    n_nonseq: int
    until: bool
    keep: tuple                # per trace (rec then nit): 0 = all entries, k > 0 = the last k
    infer_steps: bool
    truncate_gradient: int = -1
    name: str = None
    mode: object = None
    reverse: bool = False      # steps run from the last to the first (see module doc)

    def __post_init__(self):
        if self.reverse and (self.rec_taps or self.until or any(self.keep)
                             or self.truncate_gradient > 0):
            raise ValueError("Scan: a reverse loop has no recurrent outputs, no until, "
                             "no truncated gradient, and keeps whole traces")

    @property
    def n_rec(self):
        return len(self.rec_taps)

    @property
    def lags(self):
        return tuple(-min(t) for t in self.rec_taps)

    @property
    def n_taps(self):
        return sum(len(t) for t in self.rec_taps)

    @property
    def n_traces(self):
        return self.n_rec + self.n_nit


class Scan(Op):
    """A loop. See the module docstring for the layout of inputs and outputs.

    Two Scan ops are equal only when they are the same object: the inner graph
    is part of the op, and a node is merged with another only when both apply
    this very op to the same inputs.
    """

    def __init__(self, inner_inputs, inner_outputs, info, labels=None):
        self.inner_inputs = list(inner_inputs)
        self.inner_outputs = list(inner_outputs)
        self.info = info
        n_in = info.n_seqs + info.n_taps + info.n_carry + info.n_nonseq
        n_out = info.n_rec + info.n_nit + info.n_carry + int(info.until)
        if len(self.inner_inputs) != n_in or len(self.inner_outputs) != n_out:
            raise ValueError(f"Scan: the inner graph has {len(self.inner_inputs)} inputs and "
                             f"{len(self.inner_outputs)} outputs; the layout says {n_in} "
                             f"and {n_out}")
        self.labels = labels or {}

    # -- identity ------------------------------------------------------------
    def __eq__(self, other):
        return self is other

    def __hash__(self):
        return id(self)

    def __str__(self):
        return f"Scan{{{self.info.name or 'scan'}}}"

    __repr__ = __str__

    @property
    def name(self):
        return self.info.name or "scan"

    def with_info(self, **changes):
        """The same loop body with ``info`` fields changed (e.g. ``keep``)."""
        return Scan(self.inner_inputs, self.inner_outputs, dc_replace(self.info, **changes),
                    self.labels)

    # -- layout helpers -------------------------------------------------------
    def split_outer_inputs(self, xs):
        i = self.info
        xs = list(xs)
        a = 1
        b = a + i.n_seqs
        c = b + i.n_rec
        d = c + i.n_carry
        return xs[0], xs[a:b], xs[b:c], xs[c:d], xs[d:]

    def split_outer_outputs(self, xs):
        i = self.info
        xs = list(xs)
        a, b = i.n_rec, i.n_rec + i.n_nit
        return xs[:a], xs[a:b], xs[b:]

    def split_inner_inputs(self, xs=None):
        """``(seqs, taps per rec (list of lists), carries, nonseqs)``."""
        i = self.info
        xs = list(self.inner_inputs if xs is None else xs)
        seqs = xs[:i.n_seqs]
        p = i.n_seqs
        taps = []
        for t in i.rec_taps:
            taps.append(xs[p:p + len(t)])
            p += len(t)
        carries = xs[p:p + i.n_carry]
        return seqs, taps, carries, xs[p + i.n_carry:]

    def split_inner_outputs(self, xs=None):
        """``(recs, nits, carries, cond or None)``."""
        i = self.info
        xs = list(self.inner_outputs if xs is None else xs)
        a, b, c = i.n_rec, i.n_rec + i.n_nit, i.n_rec + i.n_nit + i.n_carry
        return xs[:a], xs[a:b], xs[b:c], (xs[c] if i.until else None)

    def state_types(self):
        """The type of one value of each recurrent output."""
        _, taps, _, _ = self.split_inner_inputs()
        return [t[0].type for t in taps]

    def label(self, kind, k):
        names = self.labels.get(kind, ())
        return names[k] if k < len(names) else f"{kind} {k}"

    # -- Op interface ----------------------------------------------------------
    def make_node(self, n_steps, *inputs):
        from vmc.tensor.basic import as_tensor_variable
        from vmc.tensor.elemwise import cast
        n_steps = as_tensor_variable(n_steps)
        if n_steps.type.ndim != 0 or not n_steps.type.dtype.startswith(("int", "uint")):
            raise TypeError(f"{self}: n_steps must be an integer scalar, got {n_steps.type}")
        n_steps = cast(n_steps, "int64")
        _, seqs, inits, carries, nonseqs = self.split_outer_inputs([n_steps] + list(inputs))
        i_seqs, i_taps, i_carries, i_nonseqs = self.split_inner_inputs()
        if len(inputs) != len(self.inner_inputs) - self.info.n_taps + self.info.n_rec:
            raise TypeError(f"{self}: wrong number of inputs ({len(inputs) + 1})")
        for k, (o, v) in enumerate(zip(seqs, i_seqs)):
            _check_compatible(self, f"sequence {k}", o, stacked_type(v.type))
        for k, (o, v) in enumerate(zip(inits, i_taps)):
            _check_compatible(self, f"initial value of output {k}", o, stacked_type(v[0].type))
        for k, (o, v) in enumerate(zip(carries, i_carries)):
            _check_compatible(self, f"carry {k}", o, v.type)
        for k, (o, v) in enumerate(zip(nonseqs, i_nonseqs)):
            _check_compatible(self, f"non-sequence {k}", o, v.type)
        recs, nits, outs_c, _ = self.split_inner_outputs()
        out_types = ([stacked_type(t[0].type) for t in i_taps]
                     + [stacked_type(v.type) for v in nits]
                     + [v.type for v in i_carries])
        return Apply(self, [n_steps] + list(inputs), [t.make_variable() for t in out_types])

    def infer_shape(self, node, shapes):
        raise NotImplementedError(f"{self}: the number of steps is only known at run time")

    def pullback(self, inputs, outputs, output_grads):
        from .gradient import scan_pullback
        return scan_pullback(self, inputs, outputs, output_grads)


def _check_compatible(op, what, outer, expected):
    t = outer.type
    if isinstance(expected, TensorType):
        if not isinstance(t, TensorType) or t.dtype != expected.dtype \
                or t.ndim != expected.ndim:
            raise TypeError(f"{op}: {what} has type {t}, expected {expected}")
    elif t != expected:
        raise TypeError(f"{op}: {what} has type {t}, expected {expected}")


# -- the builder ------------------------------------------------------------------------
def build_scan(seqs, recs, nits, carries, n_steps, cond=None, *, truncate_gradient=-1,
               name=None, mode=None, labels=None, strict_nonseqs=None, record=True,
               keep=None, push=True, reverse=False):
    """Make a Scan node; return its outputs ``(rec traces, nit traces, carry finals)``.

    ``seqs``: ``[(inner slice, outer sequence)]``; ``recs``: ``[(taps, outer
    init of shape (lag, ...), inner output)]`` with ``taps`` a list of
    ``(tap, inner input)``; ``nits``: inner outputs not fed back; ``carries``:
    ``[(inner input, outer initial value, inner output)]``; ``n_steps``: an
    integer scalar, or None to take the sequences' common length; ``cond``:
    the inner ``until`` condition or None.

    The inner outputs may read any outer variable: what does not depend on
    the inner inputs becomes a non-sequence (computed once, outside the
    loop). ``strict_nonseqs``, when a list, is the only free variables the
    body may read (``scan(strict=True)``). With ``record``, values that the
    gradient cannot recompute (carries, random draws) are added as hidden
    outputs; the rewrites drop them when nothing reads them. ``keep``: per
    trace, how many last entries to keep (0: all; see ``ScanInfo``). With
    ``push``, matrix products move out of the body (``vmc.scan.pushout``).
    With ``reverse``, the steps run from the last to the first (module doc).
    """
    if strict_nonseqs is not None:
        # on the body as fn wrote it: the push-outs copy what they move
        _check_strict(seqs, recs, nits, carries, cond,
                      list(strict_nonseqs) + [o for _, o in seqs])
    post = None
    if push and keep is None:
        from .pushout import push_out
        old_nits = list(nits)
        seqs, recs, nits, carries, cond, post = push_out(seqs, recs, nits, carries, cond,
                                                          n_steps)
        labels = _relabel(labels, len(recs), old_nits, nits)
    outs = _build(seqs, recs, nits, carries, n_steps, cond, truncate_gradient, name, mode,
                  labels, record, keep, reverse)
    return post(*outs) if post is not None else outs


def _placeholders(seqs, recs, carries):
    return ([s for s, _ in seqs] + [v for taps, _, _ in recs for _, v in taps]
            + [c for c, _, _ in carries])


def _build(seqs, recs, nits, carries, n_steps, cond, truncate_gradient, name, mode, labels,
           record, keep, reverse):
    from vmc.tensor.basic import constant
    placeholders = _placeholders(seqs, recs, carries)
    rec_outs = [o for _, _, o in recs]
    carry_outs = [o for _, _, o in carries]
    tail = carry_outs + ([cond] if cond is not None else [])
    outs = rec_outs + list(nits) + tail
    hidden = _records(outs, placeholders, [c for c, _, _ in carries]) if record else []
    outs = rec_outs + list(nits) + hidden + tail
    _, boundary, _ = inner_nodes(outs, placeholders)
    nonseq_inner = [placeholder(b.type, b.name) for b in boundary]
    if boundary:
        memo = dict(zip(boundary, nonseq_inner))
        memo = clone_get_equiv(list(boundary), outs, copy_inputs=False, memo=memo)
        outs = [memo[o] for o in outs]
    info = ScanInfo(
        n_seqs=len(seqs), rec_taps=tuple(tuple(t for t, _ in taps) for taps, _, _ in recs),
        n_nit=len(nits) + len(hidden), n_hidden=len(hidden), n_carry=len(carries),
        n_nonseq=len(boundary), until=cond is not None,
        keep=tuple(keep) if keep is not None else (0,) * (len(recs) + len(nits) + len(hidden)),
        infer_steps=n_steps is None, truncate_gradient=int(truncate_gradient),
        name=name, mode=mode, reverse=bool(reverse))
    labels = dict(labels or {})
    labels["outs"] = list(labels.get("outs", [f"output {k}" for k in
                                              range(len(recs) + len(nits))]))
    labels["outs"] += [f"hidden record {k}" for k in range(len(hidden))]
    inner_inputs = placeholders[:len(seqs) + info.n_taps] + [c for c, _, _ in carries] \
        + nonseq_inner
    op = Scan(inner_inputs, outs, info, labels)
    if n_steps is None:
        n_steps = constant(-1, dtype="int64")
    node = op.make_node(n_steps, *[o for _, o in seqs], *[i for _, i, _ in recs],
                        *[i for _, i, _ in carries], *boundary)
    return op.split_outer_outputs(node.outputs)


def _relabel(labels, n_rec, old_nits, new_nits):
    """Output labels after the push-outs changed the not-fed-back outputs."""
    if not labels or "outs" not in labels or old_nits == new_nits:
        return labels
    outs = list(labels["outs"])
    by_var = {id(v): outs[n_rec + k] for k, v in enumerate(old_nits) if n_rec + k < len(outs)}
    labels = dict(labels)
    labels["outs"] = outs[:n_rec] + [by_var.get(id(v), f"recorded value {k}")
                                     for k, v in enumerate(new_nits)]
    return labels


def _records(outs, placeholders, carry_inputs):
    """Inner values the backward pass needs but cannot recompute from the
    traces: the value of each float tensor carry at each step, and the tensor
    outputs of nodes that read a non-tensor value derived from a carry (a
    random draw reads its generator)."""
    nodes, _, depends = inner_nodes(outs, placeholders)
    read = set()
    for node in nodes:
        read.update(node.inputs)
    hidden = [c for c in carry_inputs if is_float_tensor(c) and c in read]
    for node in nodes:
        if any(not is_tensor(v) and v in depends for v in node.inputs):
            hidden += [o for o in node.outputs if is_tensor(o) and (o in read or o in outs)]
    return hidden


def _check_strict(seqs, recs, nits, carries, cond, allowed):
    """``scan(strict=True)``: the body reads no free variable but ``allowed``."""
    outs = ([o for _, _, o in recs] + list(nits) + [o for _, _, o in carries]
            + ([cond] if cond is not None else []))
    _, boundary, _ = inner_nodes(outs, _placeholders(seqs, recs, carries))
    allowed = set(allowed)
    free = [v for v in graph_inputs(boundary, blockers=allowed)
            if not isinstance(v, Constant) and v not in allowed]
    if free:
        v = free[0]
        kind = "shared variable" if isinstance(v, SharedVariable) else "variable"
        raise ValueError(f"scan(strict=True): fn reads the {kind} {v!r} ({v.type}), which "
                         f"is not in non_sequences; pass it in non_sequences or use "
                         f"strict=False")

