"""Running a graph in every mode and comparing: ``check(progs, seed)``.

Each graph is compiled three ways: fast_run, no rewrites (the reference), and
DebugMode (fast_run's rewrites, every thunk checked against its Python
reference, strides varied). Outputs must agree in shape and dtype, and in
value to a tolerance that fits the dtype; any mode that raises where the
reference does not is a failure too. Several graphs can be compiled into one
function (``batch``): one C compile for all of them. A batch that fails is
checked again graph by graph, so each failure names its own graph.
"""
from __future__ import annotations

import warnings

import numpy as np

import vmc
from vmc.compile import DebugMode

from .graphs import INPUTS, SHARED, build, input_values, inputs

TOL = {"float64": (1e-6, 1e-8), "float32": (2e-3, 1e-4)}     # rtol, atol
MODES = ("fast_run", "DebugMode")


def modes():
    return {"None": vmc.Mode(None), "fast_run": vmc.Mode("fast_run"),
            "DebugMode": DebugMode(check_isfinite=False)}


def run_graphs(progs, seed):
    """{mode: per graph, its results, or the exception the mode raised}: each
    graph of ``progs`` (all of one dtype and dims) is built over the same
    inputs, with a shared variable of its own, and called twice on the same
    values (the first results copied and released, so that the second call may
    reuse their buffers); its results are both calls' outputs and, when it
    updates its shared variable, that variable's value after them."""
    dtype, dims = progs[0].dtype, progs[0].dims
    args = input_values(dtype, dims, np.random.default_rng(seed))
    z_at = list(INPUTS).index(SHARED)
    results = {}
    for name, mode in modes().items():
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                results[name] = _run(progs, dtype, args, z_at, mode)
        except Exception as exc:           # noqa: BLE001 - a mode failing is a finding
            results[name] = exc
    return results


def _run(progs, dtype, args, z_at, mode):
    variables = inputs(dtype)
    outs, counts, updates, shared = [], [], [], []
    for p in progs:
        o, u, z = build(p, variables, args[z_at])
        outs += o
        counts.append(len(o))
        updates += u
        shared.append(z if u else None)
    free = [v for k, v in enumerate(variables) if k != z_at]
    f = vmc.function(free, outs, mode=mode, updates=updates, on_unused_input="ignore")
    vals = [a for k, a in enumerate(args) if k != z_at]
    first = [np.array(v, copy=True) for v in f(*vals)]
    second = f(*vals)
    split, k = [], 0
    for n, z in zip(counts, shared):
        split.append(first[k:k + n] + list(second[k:k + n])
                     + ([z.get_value()] if z is not None else []))
        k += n
    return split


def failure(results, g, precision="float64"):
    """How graph ``g``'s results disagree (a short key, the description), or
    None; ``precision``: the narrowest float dtype the graph computes in."""
    ref = results["None"]
    for name in MODES:
        got = results[name]
        if isinstance(ref, Exception) or isinstance(got, Exception):
            if isinstance(ref, Exception) and isinstance(got, Exception):
                continue                        # an invalid graph: every mode refuses it
            bad = got if isinstance(got, Exception) else ref
            who = name if isinstance(got, Exception) else "None (no rewrites)"
            return (f"{who} raised {type(bad).__name__}",
                    f"{who} raised {type(bad).__name__}: {bad}")
        for k, (a, b) in enumerate(zip(got[g], ref[g])):
            why = _differ(np.asarray(a), np.asarray(b), precision)
            if why:
                return (f"{name} output {k} differs",
                        f"{name} and no rewrites differ on output {k}: {why}")
    return None


def _differ(a, b, precision):
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"{a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    if a.dtype.kind not in "fc":
        return None if np.array_equal(a, b) else f"{a} vs {b}"
    # a float64 result computed through float32 values has float32's precision
    rtol, atol = TOL["float32" if "float32" in (str(a.dtype), precision) else "float64"]
    ok = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    if ok.all():
        return None
    err = np.where(ok, 0, np.abs(a - b))
    where = np.unravel_index(int(np.nanargmax(np.where(np.isnan(err), np.inf, err))), a.shape)
    return (f"largest difference at {tuple(map(int, where))}: {a[where]!r} vs {b[where]!r}\n"
            f"  got:      {np.array2string(a, precision=10)}\n"
            f"  expected: {np.array2string(b, precision=10)}")


def invalid(results):
    """Every mode raised: the graph itself is wrong (a fuzzer bug, not vmc's)."""
    return all(isinstance(r, Exception) for r in results.values())


def check(progs, seed):
    """``[(index in progs, key, description)]`` of the graphs that fail, and
    ``[(index, the reference's exception)]`` of the invalid ones (every mode
    refused them: a fuzzer bug, not vmc's)."""
    results = run_graphs(progs, seed)
    if len(progs) > 1 and (any(isinstance(r, Exception) for r in results.values())):
        found, bad = [], []
        for i, p in enumerate(progs):          # a batch that raised: graph by graph
            f, inv = check([p], seed)
            found += [(i, key, why) for _, key, why in f]
            bad += [(i, exc) for _, exc in inv]
        return found, bad
    if invalid(results):
        return [], [(i, results["None"]) for i in range(len(progs))]
    found = []
    for g, p in enumerate(progs):
        why = failure(results, g, "float32" if "float32" in p.dtypes else "float64")
        if why:
            found.append((g, *why))
    return found, []
