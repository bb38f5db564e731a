"""RNN by scan, ``h_t = tanh(x_t W + h_{t-1} U + b)``: forward and forward + grad.

    python bench/scan_rnn.py [--steps 100] [--batch 32] [--n 100] [--repeat 20]

Prints the median ms of vmc, a numpy loop (hand-written BPTT for the
gradient), JAX ``lax.scan`` and PyTensor's scan when importable, checking
each against numpy first; then the per-step cost of a scan whose step is one
scalar add (the loop overhead). Single-threaded: run it with
``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` (set below when unset).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench import models, peers  # noqa: E402  (the programs are bench D's)
from bench.impls import theano_lib  # noqa: E402


def data(steps, batch, n, seed=0):
    d = models.rnn_data(steps, batch, n, n, seed)
    return (d.X, d.W, d.U, d.b, d.h0)


def theano_fn(kind):
    def make(grad):
        f = models.theano_rnn(theano_lib(kind), grad)
        f.trust_input = True
        return f
    return make


def jax_fn(grad):
    jax, jnp = peers.jax()
    forward, loss_grad = models.jax_rnn(jax, jnp)
    f = loss_grad if grad else forward
    return lambda *args: jax.block_until_ready(f(*args))


def timeit(f, args, repeat):
    f(*args)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def check(out, ref):
    outs = out if isinstance(out, (list, tuple)) else [out]
    refs = ref if isinstance(ref, (list, tuple)) else [ref]
    for o, r in zip(outs, refs):
        np.testing.assert_allclose(np.asarray(o), r, rtol=1e-7, atol=1e-9)


def rnn_table(args):
    d = data(args.steps, args.batch, args.n)
    impls = [("vmc scan", theano_fn("vmc")), ("jax lax.scan", jax_fn),
             ("pytensor scan", theano_fn("pytensor cvm"))]
    print(f"RNN {args.steps} steps, batch {args.batch}, in/hidden {args.n}, float64 "
          f"(median ms of {args.repeat})")
    print(f"  {'':16}{'forward':>12}{'fwd+grad':>12}")
    rows = {"numpy loop": [timeit(models.numpy_rnn_forward, d, args.repeat),
                           timeit(models.numpy_rnn_grad, d, args.repeat)]}
    ref = [models.numpy_rnn_forward(*d), models.numpy_rnn_grad(*d)]
    for name, make in impls:
        row = []
        for grad in (False, True):
            try:
                f = make(grad)
                check(f(*d), ref[grad])
                row.append(timeit(f, d, args.repeat))
            except ImportError as e:
                row.append(f"missing ({e.name})")
            except Exception as e:          # noqa: BLE001 - a failing peer is reported
                row.append(f"failed: {type(e).__name__}: {str(e)[:60]}")
        rows[name] = row
    for name, row in rows.items():
        cells = "".join(f"{c:12.2f}" if isinstance(c, float) else f"  {c}" for c in row)
        print(f"  {name:16}{cells}")
    jax_row = rows.get("jax lax.scan")
    if jax_row and all(isinstance(c, float) for c in jax_row + rows["vmc scan"]):
        r = [v / j for v, j in zip(rows["vmc scan"], jax_row)]
        print(f"  vmc / jax: forward {r[0]:.2f}x, fwd+grad {r[1]:.2f}x")


def overhead(args):
    import vmc
    import vmc.scan  # noqa: F401
    import vmc.tensor as vt
    n = vt.lscalar("n")
    x0 = vt.dscalar("x0")
    out, _ = vmc.scan(lambda a: a + 1.0, outputs_info=x0, n_steps=n)
    f = vmc.function([x0, n], out[-1])
    f.trust_input = True
    x = np.asarray(0.0)
    big, small = np.asarray(100000), np.asarray(1000)
    assert f(x, big) == 100000.0
    t_big = timeit(f, (x, big), 5)
    t_small = timeit(f, (x, small), 5)
    per = (t_big - t_small) / (100000 - 1000) * 1e6
    print(f"scan loop overhead (step = one scalar add, only the last value kept): "
          f"{per:.0f} ns/step")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    rnn_table(args)
    overhead(args)


if __name__ == "__main__":
    main()
