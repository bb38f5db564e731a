"""MLP training-step throughput: vmc fast_run vs vmc with no rewrites vs numpy by hand.

    python -m bench.mlp_step [--steps 50] [--batch 128] [--dtypes float64,float32]

784-500-10, tanh, softmax, mean NLL, SGD updates inside the function (the models of
``bench.models``). Single thread. Prints steps/s (the median of five timed rounds) and
the optimized graph's op counts; ``measure()`` returns the same numbers for a harness.
"""
from __future__ import annotations

import os

# BLAS threads are fixed before numpy loads (single-thread numbers, as the issue asks).
for _k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402

from bench.models import mlp_data, numpy_mlp_step, theano_mlp  # noqa: E402

SIZES = [784, 500, 10]


def _vmc(mode):
    import vmc
    import vmc.tensor as vt
    return SimpleNamespace(T=vt, softmax=vt.softmax, grad=vmc.grad, shared=vmc.shared,
                           function=functools.partial(vmc.function, mode=mode))


def _rate(step, steps, rounds=5):
    step()                                            # warm: buffers, caches
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t0) / steps)
    return 1.0 / float(np.median(times))


def measure(dtype="float64", batch=128, steps=50):
    """{name: steps/s} for vmc fast_run, vmc mode None and numpy, plus the op counts
    of the optimized graph and the largest parameter difference after one step."""
    data = mlp_data(SIZES, batch, dtype)
    out = {}
    fns = {}
    for name, mode in (("vmc fast_run", "fast_run"), ("vmc None", "None")):
        t0 = time.perf_counter()
        f, shared = theano_mlp(_vmc(mode), data)
        out[f"{name} compile s"] = time.perf_counter() - t0
        fns[name] = (f, shared)
    params = [p.copy() for p in data.params]
    out["numpy"] = _rate(lambda: numpy_mlp_step(params, data.X, data.y, data.lr), steps)
    for name, (f, _) in fns.items():
        out[name] = _rate(lambda f=f: f(data.X, data.y), steps)
    # the numbers: one step of each from the same start
    fresh = {}
    for name, mode in (("vmc fast_run", "fast_run"), ("vmc None", "None")):
        f, shared = theano_mlp(_vmc(mode), data)
        f(data.X, data.y)
        fresh[name] = [s.get_value() for s in shared]
    out["max param diff"] = max(float(np.abs(a - b).max()) for a, b in
                                zip(fresh["vmc fast_run"], fresh["vmc None"]))
    f = fns["vmc fast_run"][0]
    out["ops"] = dict(Counter(type(n.op).__name__ for n in f.fgraph.toposort()))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dtypes", default="float64,float32")
    args = ap.parse_args(argv)
    for dtype in args.dtypes.split(","):
        r = measure(dtype, args.batch, args.steps)
        print(f"MLP {'-'.join(map(str, SIZES))} batch {args.batch} {dtype}:")
        for name in ("vmc fast_run", "vmc None", "numpy"):
            print(f"  {name:<14} {r[name]:8.1f} steps/s   ({r[name] / r['numpy']:.2f}x numpy)")
        print(f"  compile: fast_run {r['vmc fast_run compile s']:.3f} s, "
              f"None {r['vmc None compile s']:.3f} s; max param diff after one step "
              f"{r['max param diff']:.2e}")
        print(f"  optimized graph: {r['ops']}")


if __name__ == "__main__":
    main()
