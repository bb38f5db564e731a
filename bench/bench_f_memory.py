"""F. Peak memory of one call on an 80 MB float64 vector (8 MB with --quick), fresh process.

Programs: a 50-op elementwise chain (``y*1.0001``, ``y+0.5`` alternating: fusable), and 50
steps of ``y = y*1.0001 + 0.5; y = y - y.mean()`` (a reduction every step: not one kernel).
Each measurement is a new process: it imports the library, compiles and runs the program
once on a 1000-element vector (so lazy JIT and first-use initialisation are not counted; JAX
instead compiles ahead of time with ``jit(...).lower(x).compile()``), allocates the input,
compiles again for it, then resets the peak-RSS mark
(``/proc/self/clear_refs``), takes the resident size as the baseline, makes one call, and
reads ``VmHWM``: the median is peak RSS growth during that call, output included, so the
least any impl can show is 1x the input. ``time`` is that first call's time.
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time

import numpy as np

from bench import models
from bench.harness import Case, Impl, Measured

TITLE = "peak memory growth of one call, fresh process (lower is better)"
BLURB = ("vmc's target (issue 3): the 50-step chain with `y - y.mean()` stays under 2x the "
         "input above the baseline (`x input` < 2).")
COLUMNS = ("x input", "time")
KINDS = ("numpy", "jax jit", "torch eager", "pytensor cvm", "pytensor default", "vmc")
SAMPLE_EVERY = 99_991


def size(cfg) -> int:
    return 1_000_000 if cfg.quick else 10_000_000


def cases(cfg) -> list:
    n = size(cfg)
    mb = n * 8 / 2**20
    out = []
    for program, label in (("scale", f"50-op chain, {mb:.0f} MB"),
                           ("mean", f"50 x (y*1.0001+0.5; y-mean), {mb:.0f} MB")):
        impls = [Impl(kind, _builder(kind, program, n, 1 if cfg.quick else 3))
                 for kind in KINDS]
        out.append(Case(label, lambda p=program: sample(run_numpy(p, _input(n))), impls,
                        unit="MB", meta={"input_mb": mb}))
    return out


def _input(n: int) -> np.ndarray:
    return np.random.default_rng(5).standard_normal(n)


def program_fn(program: str, mean):
    if program == "scale":
        return lambda y: models.scale_chain(y, 50)
    return lambda y: models.mean_chain(y, 50, mean)


def run_numpy(program: str, x: np.ndarray) -> np.ndarray:
    return program_fn(program, np.mean)(x)


def sample(y) -> np.ndarray:
    return np.asarray(y)[::SAMPLE_EVERY].copy()


# ---------------------------------------------------------------------------------------------
# Inside the fresh process


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> str:
    """Reset VmHWM to the current RSS; returns the method used for the baseline."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "clear_refs"
    except OSError:
        return "hwm-before"


def prepare(kind: str, program: str):
    """``(compile_for, to_numpy)``: ``compile_for(x)`` returns ``(call, converted x)`` with
    everything compiled for ``x``'s shape; vmc, PyTensor and numba compile once for all
    shapes, JAX ahead of time for each shape."""
    from bench import peers
    from bench.impls import theano_lib
    if kind == "numpy":
        f = program_fn(program, np.mean)
        return (lambda x: (f, x)), np.asarray
    if kind == "jax jit":
        jax, jnp = peers.jax()
        jitted = jax.jit(program_fn(program, jnp.mean))

        def compile_for(x):
            xd = jax.device_put(x)
            compiled = jitted.lower(xd).compile()
            return (lambda v: compiled(v).block_until_ready()), xd
        return compile_for, np.asarray
    if kind == "torch eager":
        torch = peers.torch()
        f = program_fn(program, torch.mean)

        def call(v):
            with torch.no_grad():
                return f(v)
        return (lambda x: (call, torch.from_numpy(x))), lambda t: t.numpy()
    th = theano_lib(kind)
    xs = th.T.dvector("x")
    f = th.function([xs], program_fn(program, th.T.mean)(xs))
    return (lambda x: (f, x)), np.asarray


def child_main(kind: str, program: str, n: int) -> None:
    compile_for, to_np = prepare(kind, program)
    call, xin = compile_for(_input(1000))
    call(xin)                # lazy JIT and first-use initialisation, on a small input
    x = _input(n)
    call, xin = compile_for(x)
    gc.collect()
    method = _reset_peak()
    base = _status_kb("VmRSS") if method == "clear_refs" else _status_kb("VmHWM")
    t0 = time.perf_counter()
    out = call(xin)
    t1 = time.perf_counter()
    peak = _status_kb("VmHWM")
    print("@@RESULT " + json.dumps({"growth_mb": (peak - base) / 1024, "time_s": t1 - t0,
                                    "method": method, "result": sample(to_np(out)).tolist()}))


# ---------------------------------------------------------------------------------------------
# The parent side


def run_fresh(kind: str, program: str, n: int, timeout: float = 600) -> dict:
    cmd = [sys.executable, "-m", "bench.bench_f_memory", "--child", kind, program, str(n)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=os.getcwd())
    for line in p.stdout.splitlines():
        if line.startswith("@@RESULT "):
            return json.loads(line[len("@@RESULT "):])
    tail = " | ".join((p.stdout + p.stderr).strip().splitlines()[-4:])
    raise RuntimeError(f"fresh process exited with {p.returncode}: {tail[-500:]}")


def _builder(kind: str, program: str, n: int, n_samples: int):
    def build():
        from bench import peers
        from bench.impls import theano_lib
        if kind == "jax jit":
            peers.jax()
        elif kind == "torch eager":
            peers.torch()
        elif kind != "numpy":
            theano_lib(kind)                  # missing or failing: say so without a process
        runs = [run_fresh(kind, program, n) for _ in range(n_samples)]
        times = sorted(r["time_s"] for r in runs)
        return Measured([r["growth_mb"] for r in runs], result=np.asarray(runs[-1]["result"]),
                        extra={"time_s": times[len(times) // 2], "method": runs[-1]["method"]})
    return build


def derive(rows) -> None:
    from bench.harness import fmt_time
    for r in rows:
        if r.ok:
            r.cols["x input"] = f"{r.median / r.meta['input_mb']:.2f}"
            r.cols["time"] = fmt_time(r.extra["time_s"])


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit("usage: python -m bench.bench_f_memory --child KIND PROGRAM N")
