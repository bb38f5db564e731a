"""Fused elementwise kernels vs numpy, numexpr and JAX, single thread.

    python bench/elemwise_kernels.py [--n 10000000] [--repeat 15]

For each expression and dtype prints the best time in ms and the fraction of
np.copyto's bandwidth (bytes the expression must move / time, over the bytes
copyto moves / its time; 1.0 = as fast as memory allows). ``vmc`` allocates a
fresh output per call, as a function returning a new array must: at 10M
elements that costs page faults that copyto (into an existing array) does not
pay; ``vmc reuse`` is the same kernel when its output buffer can be reused
(the caller dropped the previous result), the steady state inside a training
loop. Every process is pinned to one core.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from vmc.thunks.cgen import KernelSpec, build_kernels  # noqa: E402
from vmc.thunks.cgen.caller import call  # noqa: E402


def spec_gauss_tanh(dt):
    """exp(-x*x)*y + tanh(z)*0.5"""
    v = lambda *a: a
    return KernelSpec(
        inputs=((dt, (False,)),) * 3,
        body=(v("a", "mul", ("i0", "i0"), dt), v("b", "neg", ("a",), dt), v("c", "exp", ("b",), dt),
              v("d", "mul", ("c", "i1"), dt), v("e", "tanh", ("i2",), dt),
              v("f", "mul", ("e", "half"), dt), v("g", "add", ("d", "f"), dt)),
        constants=(("half", 0.5, dt),), outputs=(("g", dt),))


def spec_axpy(dt):
    """x*y + z*0.5"""
    return KernelSpec(
        inputs=((dt, (False,)),) * 3,
        body=(("a", "mul", ("i0", "i1"), dt), ("b", "mul", ("i2", "half"), dt),
              ("c", "add", ("a", "b"), dt)),
        constants=(("half", 0.5, dt),), outputs=(("c", dt),))


EXPRS = {"exp(-x*x)*y + tanh(z)*0.5": (spec_gauss_tanh, lambda x, y, z: np.exp(-x * x) * y + np.tanh(z) * 0.5,
                                       "exp(-x*x)*y + tanh(z)*0.5"),
         "x*y + z*0.5": (spec_axpy, lambda x, y, z: x * y + z * 0.5, "x*y + z*0.5")}


def best_ms(fns: dict, repeat: int) -> dict:
    """Best wall time of each contender in ms, measured in interleaved rounds
    so that a burst of load from elsewhere hits all of them alike."""
    for f in fns.values():
        f()
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t0)
    return {k: v * 1e3 for k, v in best.items()}


def peers(expr_np, ne_expr, jit_src):
    out = {"numpy": expr_np}
    try:
        import numexpr as ne
        ne.set_num_threads(1)
        out["numexpr"] = lambda x, y, z: ne.evaluate(ne_expr, local_dict={"x": x, "y": y, "z": z})
    except ImportError:
        pass
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        f = jax.jit(lambda x, y, z: jit_src(x, y, z, jnp))
        out["jax"] = lambda x, y, z: f(x, y, z).block_until_ready()
        out["_jax_convert"] = jnp.asarray
    except ImportError:
        pass
    return out


JAX_SRC = {"exp(-x*x)*y + tanh(z)*0.5": lambda x, y, z, m: m.exp(-x * x) * y + m.tanh(z) * 0.5,
           "x*y + z*0.5": lambda x, y, z, m: x * y + z * 0.5}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    n = args.n
    print(f"n = {n:,}, single thread, best of {args.repeat}")
    for dt in ("float64", "float32"):
        rng = np.random.default_rng(0)
        x, y, z = (rng.standard_normal(n).astype(dt) for _ in range(3))
        dst = np.empty_like(x)
        t_copy = best_ms({"copyto": lambda: np.copyto(dst, x)}, args.repeat)["copyto"]
        bw_copy = 2 * x.nbytes / t_copy
        print(f"\n{dt}: np.copyto {t_copy:.2f} ms ({bw_copy / 1e6:.1f} GB/s)")
        for name, (mk, expr_np, ne_expr) in EXPRS.items():
            fresh, = build_kernels([mk(dt)], reuse_max_bytes=0, name_hint="bench")
            reuse, = build_kernels([mk(dt)], reuse_max_bytes=1 << 62, name_hint="bench_reuse")
            runs = {"vmc": lambda: call(fresh, x, y, z), "vmc reuse": lambda: call(reuse, x, y, z)}
            ps = peers(expr_np, ne_expr, JAX_SRC[name])
            conv = ps.pop("_jax_convert", None)
            for peer, f in ps.items():
                a = [conv(v) for v in (x, y, z)] if peer == "jax" else (x, y, z)
                runs[peer] = (lambda f=f, a=a: f(*a))
            ref = expr_np(x, y, z)
            got, = call(fresh, x, y, z)
            err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
            print(f"  {name}  (max |vmc - numpy| / max |numpy| = {err:.1e})")
            times = best_ms(runs, args.repeat)
            for k, t in times.items():
                frac = (4 * x.nbytes / t) / bw_copy
                rel = "".join(f"  {t / times[p]:.2f}x {p}" for p in ("numpy", "jax") if p in times and p != k)
                print(f"    {k:10s} {t:8.2f} ms   {frac:5.2f} of copyto bandwidth{rel}")


if __name__ == "__main__":
    main()
