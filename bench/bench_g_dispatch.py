"""G. VM dispatch: the cost per node of a graph of scalar ops, with fusion off.

The graph: ``n`` float64 scalar ops alternating ``y*a`` and ``y+b`` (inputs x, a, b: nothing
to fold or merge), compiled with the elementwise fusion pass excluded so that each op stays
one thunk: vmc ``Mode(optimizer="fast_run").excluding("fusion")``, PyTensor
``Mode(linker="cvm", optimizer="fast_run").excluding("fusion")``. numpy runs the same ops in
a Python loop on numpy scalars. ``ns/node`` is ``(t(200 nodes) - t(2 nodes)) / 198``: the
per-node cost with the per-call cost taken out (it includes each op's own arithmetic).
"""
from __future__ import annotations

import numpy as np

from bench import models, peers
from bench.harness import Case, Impl, Runner

TITLE = "VM dispatch, scalar graph with fusion off (lower is better)"
BLURB = ("vmc's target (issue 3): VM dispatch overhead per thunk at most 30 ns, on the "
         "200-node graph (`ns/node`).")
COLUMNS = ("ns/node",)
SIZES = (200, 2)


def cases(cfg) -> list:
    args = (np.asarray(0.5), np.asarray(0.999), np.asarray(0.001))
    out = []
    for n in SIZES:
        ref = lambda n=n: models.scalar_graph(*args, n)  # noqa: E731
        impls = [Impl("numpy", lambda n=n: _numpy(args, n))]
        for kind in ("pytensor cvm", "vmc"):
            for trust in (False, True):
                name = f"{kind} no fusion" + (" trust_input" if trust else "")
                impls.append(Impl(name, lambda k=kind, t=trust, n=n: _theano(k, args, n, t)))
        out.append(Case(f"{n} nodes", ref, impls, meta={"nodes": n}))
    return out


def _numpy(args, n) -> Runner:
    x, a, b = (np.float64(v) for v in args)
    return Runner(models.scalar_graph, (x, a, b, n))


def _theano(kind, args, n, trust) -> Runner:
    if kind == "vmc":
        th = peers.vmc_fn(mode=peers.vmc_mode_without_fusion())
    else:
        th = peers.pytensor_fn("cvm", exclude=("fusion",))
    T = th.T
    x, a, b = T.dscalar("x"), T.dscalar("a"), T.dscalar("b")
    f = th.function([x, a, b], models.scalar_graph(x, a, b, n), trust_input=trust)
    return Runner(f, args)


def derive(rows) -> None:
    small = {r.impl: r.median for r in rows if r.ok and r.meta.get("nodes") == min(SIZES)}
    big_n, small_n = max(SIZES), min(SIZES)
    for r in rows:
        if r.ok and r.meta.get("nodes") == big_n and r.impl in small:
            per = (r.median - small[r.impl]) / (big_n - small_n)
            r.cols["ns/node"] = f"{per * 1e9:.1f}"
