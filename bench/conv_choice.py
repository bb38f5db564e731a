"""The measurements behind vmc's choice of convolution algorithm on the CPU
(``vmc/thunks/_conv.pyx``: ``_use_direct`` and ``CHUNK_BYTES``).

For each shape and each op (forward, input gradient, filter gradient) it times,
in one process and in interleaved rounds (so that the machine's drift and the
other sessions' load weigh on every variant alike), as the CPU time of the
calling thread (``time.thread_time``: on a shared machine the wall time mostly
measures how long the scheduler kept this process waiting; with one thread,
BLAS's included, the thread's CPU time is the call's cost): the numpy thunk (the
reference), the C thunk with im2col + gemm at several chunk sizes, and the C
thunk with the direct kernels where they apply. One thread (BLAS too) unless
``--threads N``. Prints milliseconds per call (median over the rounds) and
each variant's time over the best one's.

    python -m bench.conv_choice [--rounds 15] [--threads 1] [--dtype float32] [--only lenet1] [--baseline]
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def shapes():
    """name -> (border_mode, subsample, x shape, w shape): LeNet's two layers, the
    bench's conv2d forward, and few-channel shapes around the rule's threshold."""
    return {
        "lenet1": ("valid", (1, 1), (64, 1, 28, 28), (20, 1, 5, 5)),
        "lenet2": ("valid", (1, 1), (64, 20, 12, 12), (50, 20, 5, 5)),
        "bench": ("half", (1, 1), (32, 32, 64, 64), (64, 32, 3, 3)),
        "rgb3x3": ("half", (1, 1), (32, 3, 32, 32), (32, 3, 3, 3)),
        "rgb5x5": ("half", (1, 1), (32, 3, 32, 32), (32, 3, 5, 5)),
        "c8_3x3": ("half", (1, 1), (32, 8, 32, 32), (32, 8, 3, 3)),
        "c16_3x3": ("half", (1, 1), (32, 16, 32, 32), (32, 16, 3, 3)),
        "c4_5x5": ("valid", (1, 1), (64, 4, 28, 28), (16, 4, 5, 5)),
        "rgb7x7": ("half", (1, 1), (16, 3, 64, 64), (16, 3, 7, 7)),
        "c1_wide": ("valid", (1, 1), (16, 1, 96, 96), (32, 1, 5, 5)),
    }


def variants(op, kind, dtype, chunks):
    from vmc.thunks import _conv, conv
    ref = {"forward": conv.conv_forward, "grad_inputs": conv.conv_grad_inputs,
           "grad_weights": conv.conv_grad_weights}[kind]
    out = {"numpy": ("py", lambda *a: ref(op, *a))}
    for cb in chunks:
        out[f"gemm {cb // 1024}K"] = ("c", _conv.conv_thunk(op, kind, dtype, "gemm", cb))
    if kind != "grad_inputs":
        out["direct"] = ("c", _conv.conv_thunk(op, kind, dtype, "direct"))
    return out


def time_case(name, kind, spec, dtype, rounds, chunks, threads):
    import numpy as np
    from vmc._vm import call_thunk
    from vmc.tensor.nnet.abstract_conv import (AbstractConv2d, AbstractConv2d_gradInputs,
                                               AbstractConv2d_gradWeights)
    mode, sub, xs, ws = spec
    cls = {"forward": AbstractConv2d, "grad_inputs": AbstractConv2d_gradInputs,
           "grad_weights": AbstractConv2d_gradWeights}[kind]
    op = cls(border_mode=mode, subsample=sub, filter_flip=False)
    g = np.random.default_rng(0)
    x = g.standard_normal(xs).astype(dtype)
    w = g.standard_normal(ws).astype(dtype)
    top = AbstractConv2d(border_mode=mode, subsample=sub, filter_flip=False)
    from vmc.thunks import conv
    y = conv.conv_forward(top, x, w)
    args = {"forward": (x, w), "grad_inputs": (w, y, np.array(xs[2:])),
            "grad_weights": (x, y, np.array(ws[2:]))}[kind]
    impls = variants(op, kind, dtype, chunks)
    calls = {}
    want = None
    for label, (k, t) in impls.items():
        f = (lambda t=t: t(*args)) if k == "py" else (lambda t=t: call_thunk(t, args, 1)[0])
        r = f()
        if want is None:
            want = r
        elif not np.allclose(r, want, rtol=1e-3, atol=1e-3 * np.abs(want).max()):
            raise AssertionError(f"{name} {kind} {label}: differs from numpy")
        calls[label] = f
    clock = time.thread_time if threads == 1 else time.perf_counter
    reps = {}
    for label, f in calls.items():        # repeats per sample: at least ~10 ms
        t0 = clock()
        f()
        reps[label] = max(1, int(0.01 / max(clock() - t0, 1e-6)))
    samples = {label: [] for label in calls}
    labels = list(calls)
    for r in range(rounds):
        for i in range(len(labels)):
            label = labels[(i + r) % len(labels)]
            f, n = calls[label], reps[label]
            t0 = clock()
            for _ in range(n):
                f()
            samples[label].append((clock() - t0) / n)
    return {label: sorted(s)[len(s) // 2] for label, s in samples.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--only", default="", help="comma-separated shape names")
    ap.add_argument("--baseline", action="store_true",
                    help="the direct kernels' baseline (SSE2) variant, not AVX2")
    ap.add_argument("--kinds", default="forward,grad_inputs,grad_weights")
    ap.add_argument("--chunks", default="0,262144,1048576,4194304,1073741824",
                    help="chunk sizes in bytes to try (0: one image per gemm)")
    a = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    import vmc
    from vmc.thunks import _conv
    vmc.config.threads = a.threads
    chunks = [int(c) for c in a.chunks.split(",")]
    if a.baseline:
        _conv.set_direct_isa("baseline")
    clock = "thread CPU time" if a.threads == 1 else "wall time"
    print(f"# conv_choice: {a.dtype}, {a.threads} thread(s), {clock}, direct kernels: "
          f"{_conv.direct_isa()}, load {os.getloadavg()[0]:.1f}")
    todo = shapes()
    if a.only:
        todo = {k: v for k, v in todo.items() if k in a.only.split(",")}
    for name, spec in todo.items():
        for kind in a.kinds.split(","):
            med = time_case(name, kind, spec, a.dtype, a.rounds, chunks, a.threads)
            best = min(med.values())
            cells = "  ".join(f"{k} {v * 1e3:.3f}ms ({v / best:.2f})" for k, v in med.items())
            print(f"{name:8s} {kind:12s} {cells}", flush=True)
    print(f"# load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
