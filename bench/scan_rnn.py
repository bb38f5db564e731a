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


def data(steps, batch, n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((steps, batch, n)), rng.standard_normal((n, n)) * 0.1,
            rng.standard_normal((n, n)) * 0.1, rng.standard_normal(n) * 0.1,
            np.zeros((batch, n)))


def numpy_forward(X, W, U, b, h0):
    H = np.empty((X.shape[0],) + h0.shape)
    h = h0
    for t in range(X.shape[0]):
        h = np.tanh(X[t] @ W + h @ U + b)
        H[t] = h
    return H


def numpy_grad(X, W, U, b, h0):
    H = numpy_forward(X, W, U, b, h0)
    gW, gU, dh = np.zeros_like(W), np.zeros_like(U), np.zeros_like(h0)
    for t in reversed(range(X.shape[0])):
        da = (dh + 1.0) * (1.0 - H[t] * H[t])
        gW += X[t].T @ da
        gU += (H[t - 1] if t > 0 else h0).T @ da
        dh = da @ U.T
    return [H.sum(), gW, gU]


def theano_like(lib, T, grad):
    X, W, U, h0 = T.tensor3("X", dtype="float64"), T.dmatrix("W"), T.dmatrix("U"), \
        T.dmatrix("h0")
    b = T.dvector("b")
    kw = {"return_updates": False} if lib.__name__ == "pytensor" else {}
    H = lib.scan(lambda x, h, W_, U_, b_: T.tanh(T.dot(x, W_) + T.dot(h, U_) + b_),
                 sequences=X, outputs_info=h0, non_sequences=[W, U, b], **kw)
    H = H[0] if isinstance(H, tuple) else H
    if not grad:
        return lib.function([X, W, U, b, h0], H)
    loss = H.sum()
    return lib.function([X, W, U, b, h0], [loss] + lib.grad(loss, [W, U]))


def vmc_fn(grad):
    import vmc
    import vmc.scan  # noqa: F401  (vmc.scan, whether or not vmc exports it yet)
    import vmc.tensor as vt
    f = theano_like(vmc, vt, grad)
    f.trust_input = True
    return f


def pytensor_fn(grad):
    import pytensor
    import pytensor.tensor as pt
    return theano_like(pytensor, pt, grad)


def jax_fn(grad):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def forward(X, W, U, b, h0):
        def step(h, x):
            h = jnp.tanh(x @ W + h @ U + b)
            return h, h
        return jax.lax.scan(step, h0, X)[1]

    def loss_grad(X, W, U, b, h0):
        loss, (gW, gU) = jax.value_and_grad(
            lambda W_, U_: forward(X, W_, U_, b, h0).sum(), argnums=(0, 1))(W, U)
        return [loss, gW, gU]
    f = jax.jit(loss_grad if grad else forward)

    def call(*args):
        return jax.block_until_ready(f(*args))
    return call


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
    peers = [("vmc scan", vmc_fn), ("jax lax.scan", jax_fn), ("pytensor scan", pytensor_fn)]
    print(f"RNN {args.steps} steps, batch {args.batch}, in/hidden {args.n}, float64 "
          f"(median ms of {args.repeat})")
    print(f"  {'':16}{'forward':>12}{'fwd+grad':>12}")
    rows = {"numpy loop": [timeit(numpy_forward, d, args.repeat),
                           timeit(numpy_grad, d, args.repeat)]}
    ref = [numpy_forward(*d), numpy_grad(*d)]
    for name, make in peers:
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
