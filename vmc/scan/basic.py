"""``vmc.scan`` and its relatives ``map``, ``reduce``, ``foldl``, ``foldr``.

Theano's semantics: ``fn`` receives, in order, the sequence slices (each
sequence's taps in the order given), the previous values of the outputs that
are fed back (each output's taps in the order given) and the non-sequences;
it returns its outputs, optionally an updates dict and optionally
``until(condition)``.
"""
from __future__ import annotations

from vmc.config import config
from vmc.graph import basic as graph_basic
from vmc.graph.basic import SharedVariable
from vmc.graph.traversal import ancestors
from vmc.graph.type import TensorType

from .op import build_scan
from .utils import as_variable, elem_type, placeholder, until


def scan(fn, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         truncate_gradient=-1, go_backwards=False, name=None, strict=False, mode=None,
         return_list=False):
    """Loop ``fn`` over ``sequences``; return ``(outputs, updates)``.

    - ``sequences``: variables, or ``dict(input=x, taps=[-1, 0, 2])``; step
      ``t`` of a tap ``k`` reads ``x[t + k - min(taps)]``.
    - ``outputs_info``: one entry per output of ``fn``: an initial value (the
      output is fed back as its previous value, tap -1), ``dict(initial=x0,
      taps=[-2, -1])`` (``x0`` holds the values before step 0, oldest first),
      or ``None`` (not fed back).
    - ``non_sequences``: values ``fn`` reads at every step. Any other
      variable ``fn`` reads is found automatically (unless ``strict``), shared
      variables included.
    - ``n_steps``: the number of steps; by default the sequences' length
      (all sequences must then have the same length). With ``until`` it is
      the maximum.
    - ``truncate_gradient``: back-propagate through at most that many steps
      (-1: all).
    - ``go_backwards``: iterate over the sequences from the end; the outputs
      are in the order they were computed.
    - ``mode``: rewrite mode of the loop body (default: ``config.optimizer``).

    Returns the outputs (one variable, or a list when ``fn`` returns several
    or ``return_list``): for a fed-back output, its value after each step
    (the initial values are not included); for others, their values at each
    step. ``updates`` maps each shared variable updated inside the loop (by
    the updates ``fn`` returns, or by random draws) to its value after the
    last step; pass it to ``vmc.function(..., updates=updates)``.
    """
    label = name or getattr(fn, "__name__", None) or "scan"
    seqs = _normalize_sequences(sequences)
    outs_info = _normalize_outputs_info(outputs_info)
    explicit_ns = [as_variable(v, "a non-sequence") for v in _as_list(non_sequences)]
    steps = _normalize_n_steps(n_steps)
    if steps is None and not seqs:
        raise ValueError("scan: give sequences or n_steps; without them the number of "
                         "steps is unknown")
    seq_items, out_args = _step_inputs(seqs, outs_info)
    if config.compute_test_value != "off":
        _step_test_values(seqs, seq_items, outs_info)
    first_id = next(graph_basic._ids)    # variables made by fn have larger ids
    raw = fn(*([v for _, _, v in seq_items] + out_args + explicit_ns))
    outputs, updates, cond = _parse_return(raw)
    if outputs_info is None:
        outs_info = [None] * len(outputs)
    if len(outputs) != len(outs_info):
        raise ValueError(f"scan: fn returned {len(outputs)} output(s) but outputs_info has "
                         f"{len(outs_info)} entr{'y' if len(outs_info) == 1 else 'ies'}; give "
                         f"one entry per output (None for an output that is not fed back)")
    for k, (out, o) in enumerate(zip(outputs, outs_info)):
        if o is not None:
            outputs[k] = _check_state(k, out, o)
    carries, updated, outputs, cond = _carries(outputs, updates, cond, first_id)
    recs = [([(t, v) for t, v in zip(o["taps"], o["inner"])], _init_block(o), out)
            for out, o in zip(outputs, outs_info) if o is not None]
    nits = [out for out, o in zip(outputs, outs_info) if o is None]
    op_seqs = [(v, _tap_slice(seqs[j], tap, go_backwards)) for j, tap, v in seq_items]
    strict_ns = explicit_ns + [s["input"] for s in seqs] if strict else None
    rec_tr, nit_tr, finals = build_scan(
        op_seqs, recs, nits, carries, steps, cond, truncate_gradient=truncate_gradient,
        name=label, mode=mode, labels=_labels(seqs, seq_items, outputs, outs_info, updated),
        strict_nonseqs=strict_ns)
    results = _results(outputs, outs_info, rec_tr, nit_tr)
    new_updates = {}
    for (shared, from_default), final in zip(updated, finals):
        new_updates[shared] = final
        if from_default:
            # The draw happened inside fn: outside the loop the generator
            # advances by the whole loop, not by the draw's graph.
            shared.default_update = final
    if len(results) == 1 and not return_list:
        return results[0], new_updates
    return results, new_updates


def _step_inputs(seqs, outs_info):
    """The placeholders fn receives: ``[(sequence index, tap, var)]`` for the
    sequence taps, and the outputs' taps (also stored as ``o["inner"]``)."""
    seq_items = []
    for j, s in enumerate(seqs):
        for tap in s["taps"]:
            v = placeholder(elem_type(s["input"].type), _tap_name(s["input"], tap, "x", j))
            seq_items.append((j, tap, v))
    out_args = []
    for k, o in enumerate(outs_info):
        if o is not None:
            o["inner"] = [placeholder(o["state_type"], _tap_name(o["initial"], t, "y", k))
                          for t in o["taps"]]
            out_args += o["inner"]
    return seq_items, out_args


def _step_test_values(seqs, seq_items, outs_info):
    """Test values of the placeholders (``config.compute_test_value``), so
    that fn's graph computes test values as it is built: a sequence tap gets
    its sequence's first row it reads, an output tap its initial value."""
    for j, tap, v in seq_items:
        try:
            x = graph_basic.get_test_value(seqs[j]["input"])
        except AttributeError:
            continue
        k = tap - min(seqs[j]["taps"])
        if 0 <= k < x.shape[0]:
            v.tag.test_value = x[k]
    for o in outs_info:
        if o is None:
            continue
        try:
            init = graph_basic.get_test_value(o["initial"])
        except AttributeError:
            continue
        for t, v in zip(o["taps"], o["inner"]):
            v.tag.test_value = init if o["sit_sot"] else init[o["lag"] + t]


def _labels(seqs, seq_items, outputs, outs_info, updated):
    """Names of the loop's sequences, traces and carries, for messages."""
    def out_label(k, o):
        return f"output {k}" + (f" ({o.name!r})" if o.name else "")
    pairs = list(enumerate(zip(outputs, outs_info)))
    return {"seqs": [_seq_label(seqs[j], j, tap) for j, tap, _ in seq_items],
            "outs": ([out_label(k, o) for k, (o, i) in pairs if i is not None]
                     + [out_label(k, o) for k, (o, i) in pairs if i is None]),
            "carries": [repr(s) for s, _ in updated]}


def _results(outputs, outs_info, rec_tr, nit_tr):
    """fn's outputs over all steps, in fn's order (initial values dropped)."""
    results, ri, ni = [], 0, 0
    for out, o in zip(outputs, outs_info):
        if o is None:
            results.append(nit_tr[ni])
            ni += 1
        else:
            results.append(rec_tr[ri][o["lag"]:])
            ri += 1
        if out.name:
            results[-1].name = out.name
    return results


# -- normalizing the arguments ------------------------------------------------------------
def _as_list(x):
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _check_taps(taps, what):
    taps = [int(t) for t in taps]
    if not taps:
        raise ValueError(f"scan: {what} has an empty list of taps")
    if len(set(taps)) != len(taps):
        raise ValueError(f"scan: {what} has repeated taps {taps}")
    return taps


def _normalize_sequences(sequences):
    out = []
    for j, s in enumerate(_as_list(sequences)):
        if isinstance(s, dict):
            if "input" not in s:
                raise ValueError(f"scan: sequence {j} is a dict without 'input'")
            x, taps = s["input"], s.get("taps", [0])
            taps = [0] if taps is None else taps
        else:
            x, taps = s, [0]
        x = as_variable(x, f"sequence {j}")
        if not isinstance(x.type, TensorType) or x.type.ndim < 1:
            raise TypeError(f"scan: sequence {j} must be a tensor of rank >= 1 (the loop "
                            f"runs over its first dim), got {x.type}")
        out.append({"input": x, "taps": _check_taps(_as_list(taps), f"sequence {j}"),
                    "index": j})
    return out


def _normalize_outputs_info(outputs_info):
    items = outputs_info if isinstance(outputs_info, (list, tuple)) else [outputs_info]
    out = []
    for k, o in enumerate(items):
        if isinstance(o, dict):
            init = o.get("initial")
            if init is None:
                if o.get("taps"):
                    raise ValueError(f"scan: outputs_info[{k}] has taps but no initial value")
                out.append(None)
                continue
            taps = o.get("taps", [-1])
            taps = [-1] if taps is None else taps
        elif o is None:
            out.append(None)
            continue
        else:
            init, taps = o, [-1]
        init = as_variable(init, f"outputs_info[{k}]")
        taps = _check_taps(_as_list(taps), f"outputs_info[{k}]")
        if any(t >= 0 for t in taps):
            raise ValueError(f"scan: outputs_info[{k}] has taps {taps}; the taps of an output "
                             f"must be negative (its values before the current step)")
        lag = -min(taps)
        sit_sot = taps == [-1]
        if not sit_sot and (not isinstance(init.type, TensorType) or init.type.ndim < 1):
            raise TypeError(f"scan: outputs_info[{k}] has taps {taps}, so its initial value "
                            f"must stack the {lag} values before step 0 along a first dim; "
                            f"got {init.type}")
        state_type = init.type if sit_sot else elem_type(init.type)
        out.append({"initial": init, "taps": taps, "lag": lag, "sit_sot": sit_sot,
                    "state_type": state_type, "index": k})
    return out


def _normalize_n_steps(n_steps):
    if n_steps is None:
        return None
    from vmc.tensor.elemwise import cast
    v = as_variable(n_steps, "n_steps")
    if not isinstance(v.type, TensorType) or v.type.ndim != 0 or \
            not v.type.dtype.startswith(("int", "uint")):
        raise TypeError(f"scan: n_steps must be an integer scalar, got {v.type}")
    if v.owner is None and hasattr(v, "data") and int(v.data) < 0:
        raise ValueError(f"scan: n_steps must be >= 0, got {int(v.data)} (use go_backwards "
                         f"to run backwards)")
    return cast(v, "int64")


def _tap_name(x, tap, prefix, k):
    base = getattr(x, "name", None) or f"{prefix}{k}"
    return f"{base}[t{tap:+d}]" if tap else f"{base}[t]"


def _seq_label(s, j, tap):
    name = f" ({s['input'].name!r})" if s["input"].name else ""
    taps = f", tap {tap}" if s["taps"] != [0] else ""
    return f"sequence {j}{name}{taps}"


def _tap_slice(s, tap, go_backwards):
    """The sequence that step ``t`` of tap ``tap`` reads at index ``t``."""
    x = s["input"]
    if go_backwards:
        x = x[::-1]
    lo, hi = min(s["taps"]), max(s["taps"])
    start, stop = tap - lo, hi - tap
    if start == 0 and stop == 0:
        return x
    return x[start: (-stop if stop else None)]


def _init_block(o):
    """The outer initial value of a fed-back output as ``(lag, ...)``."""
    init = o["initial"]
    if o["sit_sot"]:
        from vmc.tensor.shape import expand_dims
        return expand_dims(init, 0)
    return init[:o["lag"]]


# -- fn's return value ----------------------------------------------------------------------
def _parse_return(raw):
    """``(outputs, updates, condition)`` from what fn returned."""
    outputs, updates, cond = [], {}, None
    items = list(raw) if isinstance(raw, tuple) else [raw]
    for item in items:
        if isinstance(item, until):
            cond = item.condition
        elif isinstance(item, dict):
            updates.update(item)
        elif isinstance(item, list):
            outputs += item
        elif item is None:
            continue
        else:
            outputs.append(item)
    for k, o in enumerate(outputs):
        if isinstance(o, until) or isinstance(o, dict):
            raise TypeError(f"scan: fn returned {type(o).__name__} among its outputs; return "
                            f"(outputs, updates, until(...)) with outputs first")
        outputs[k] = as_variable(o, f"output {k} of fn")
    for s in updates:
        if not isinstance(s, SharedVariable):
            raise TypeError(f"scan: fn returned an update for {s!r}, which is not a shared "
                            f"variable")
    return outputs, updates, cond


def _check_state(k, out, o):
    """The output ``out`` checked against (and fitted to) its state type."""
    st, ot = o["state_type"], out.type
    what = f"output {k} of fn" + (f" ({out.name!r})" if out.name else "")
    init = f"outputs_info[{k}]" + ("" if o["sit_sot"] else " (one entry along its first dim)")
    head = f"scan: {what} has type {ot}, but its initial value {init} has type {st}"
    if not isinstance(ot, TensorType) or not isinstance(st, TensorType):
        if ot != st:
            raise TypeError(head)
        return out
    if ot.ndim != st.ndim:
        raise TypeError(f"{head}: their ranks differ ({ot.ndim} vs {st.ndim}). The step must "
                        f"return a value of the rank of the initial state; fix the step or "
                        f"give an initial value of rank {ot.ndim}.")
    if ot.dtype != st.dtype:
        raise TypeError(f"{head}: their dtypes differ ({ot.dtype} vs {st.dtype}). Cast the "
                        f"output in fn (return y.astype({st.dtype!r})) or give an initial "
                        f"value of dtype {ot.dtype!r}.")
    for d, (a, b) in enumerate(zip(ot.shape, st.shape)):
        if b == 1 and a != 1:
            raise TypeError(f"{head}: their broadcastable patterns differ (dim {d} of the "
                            f"initial value has static length 1, the output's has "
                            f"{'unknown length' if a is None else f'length {a}'}). Give an "
                            f"initial value whose dim {d} is not statically 1 (e.g. "
                            f"vt.alloc(0.0, n) with a symbolic n, or an input), or return an "
                            f"output whose dim {d} is known to be 1.")
        if a is not None and b is not None and a != b:
            raise TypeError(f"{head}: their static shapes differ in dim {d} ({a} vs {b}).")
    if ot != st:
        from vmc.tensor.shape import SpecifyShape
        if not st.is_super(ot):
            out = SpecifyShape(st.shape)(out)
    return out


def _carries(outputs, updates, cond, first_id):
    """The carries: shared variables updated inside the loop, by ``updates``
    or by a default update (a random draw) made inside fn.

    Returns ``(carries for build_scan, [(shared, from_default_update)],
    outputs, cond)``, the last two rewritten to read the carries' inner values.
    """
    from vmc.compile import as_update_value
    from vmc.graph.traversal import clone_get_equiv
    roots = list(outputs) + list(updates.values()) + ([cond] if cond is not None else [])
    found = {s: False for s in updates}
    frontier = roots
    while frontier:
        new = []
        for v in ancestors(frontier):
            if isinstance(v, SharedVariable) and v not in found and \
                    v.default_update is not None and v.default_update.id > first_id:
                found[v] = True
                new.append(v.default_update)
        frontier = new
    if not found:
        return [], [], outputs, cond
    pairs = [(s, updates[s] if s in updates else s.default_update) for s in found]
    inner = {s: placeholder(s.type, s.name) for s, _ in pairs}
    new_values = [as_update_value(s, v) for s, v in pairs]
    # Inside the loop a carried shared variable stands for its current value.
    every = list(outputs) + new_values + ([cond] if cond is not None else [])
    memo = clone_get_equiv(list(inner), every, copy_inputs=False, memo=dict(inner))
    carries = [(inner[s], s, memo[v]) for (s, _), v in zip(pairs, new_values)]
    updated = [(s, found[s]) for s, _ in pairs]
    return (carries, updated, [memo[o] for o in outputs],
            memo[cond] if cond is not None else None)


# -- relatives ----------------------------------------------------------------------------
def map(fn, sequences, non_sequences=None, truncate_gradient=-1, go_backwards=False,
        mode=None, name=None):
    """``fn`` applied to each step of ``sequences``: ``(outputs, updates)``."""
    return scan(fn, sequences=sequences, outputs_info=None, non_sequences=non_sequences,
                truncate_gradient=truncate_gradient, go_backwards=go_backwards, mode=mode,
                name=name or "map")


def reduce(fn, sequences, outputs_info, non_sequences=None, go_backwards=False, mode=None,
           name=None):
    """Fold ``fn`` over ``sequences``: the outputs' values after the last step
    (only those are kept: memory does not grow with the length)."""
    outs, updates = scan(fn, sequences=sequences, outputs_info=outputs_info,
                         non_sequences=non_sequences, go_backwards=go_backwards, mode=mode,
                         name=name or "reduce", return_list=True)
    last = [o[-1] for o in outs]
    return (last[0] if len(last) == 1 else last), updates


def foldl(fn, sequences, outputs_info, non_sequences=None, mode=None, name=None):
    """``reduce`` from the first step to the last."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=False, mode=mode,
                  name=name or "foldl")


def foldr(fn, sequences, outputs_info, non_sequences=None, mode=None, name=None):
    """``reduce`` from the last step to the first."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=True, mode=mode,
                  name=name or "foldr")

