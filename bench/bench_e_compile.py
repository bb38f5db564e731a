"""E. Compile time in a fresh process: seconds from "build the graph" to the first result.

Programs: a 999-op elementwise chain on float64[1000] (``*x``, ``+0.1``, ``tanh``, ``-x``
cycling), and a 10-layer MLP training step (784-256x9-10, tanh, softmax, mean NLL, SGD
updates; batch 64). Each measurement is a new ``python`` process that imports the library
(``import`` column, not included in the median), builds the graph, compiles it and computes
the first result; a row is the median of 3 such processes (1 for a cold PyTensor C cache).
Cold: each process's compile cache points at a new empty directory
(``VMC_FLAGS=compiledir=...`` and ``VMC_COMPILEDIR``; ``PYTENSOR_FLAGS=compiledir=...`` and
``NUMBA_CACHE_DIR``; JAX's persistent compilation cache). Warm: later processes with the
same directory. numpy compiles nothing: its row is the time of the eager first result.
With --quick: a 199-op chain and a 3-layer MLP, and no PyTensor cvm rows (filling its C
cache takes about a minute).
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench import models
from bench.harness import Case, Impl, Measured, Skipped

TITLE = "compile time in a fresh process, seconds to first result (lower is better)"
BLURB = ("vmc's targets (issue 4): each program's first result within 0.5 s cold (empty "
         "cache) and 0.1 s warm, in a fresh process. `import` is the library's import time, "
         "not included in the median.")
COLUMNS = ("import", "samples")
KINDS = ("numpy", "jax jit", "pytensor cvm", "pytensor default", "vmc")
CHAIN_LEN = 1000
MLP_HIDDEN, MLP_BATCH = 256, 64


def programs(cfg) -> list:
    """(name, program, size): the chain's op count or the MLP's layer count."""
    if cfg.quick:
        return [("199-op chain", "chain", 199), ("3-layer MLP step", "mlp", 3)]
    return [("999-op chain", "chain", 999), ("10-layer MLP step", "mlp", 10)]


def cases(cfg) -> list:
    out, dirs = [], _CacheDirs()
    for name, program, size in programs(cfg):
        ref = lambda p=program, n=size: reference(p, n)  # noqa: E731
        for warm in (False, True):
            impls = [Impl(kind, _builder(kind, program, size, warm, _samples(cfg, kind, warm),
                                         dirs))
                     if not (cfg.quick and kind == "pytensor cvm") else
                     Impl(kind, _skip_quick) for kind in KINDS]
            out.append(Case(f"{name}, {'warm' if warm else 'cold'} cache", ref, impls))
    return out


def _samples(cfg, kind: str, warm: bool) -> int:
    """Fresh processes per row: 3 (the median), but one with --quick, and one for a cold
    PyTensor C cache (about 25 s a sample)."""
    if cfg.quick or (kind == "pytensor cvm" and not warm):
        return 1
    return 3


# ---------------------------------------------------------------------------------------------
# The programs, as run inside the fresh process


def _chain_input() -> np.ndarray:
    return np.random.default_rng(3).standard_normal(CHAIN_LEN)


def _mlp_data(layers: int):
    sizes = [784] + [MLP_HIDDEN] * (layers - 1) + [10]
    return models.mlp_data(sizes, MLP_BATCH, "float64", seed=4)


def reference(program: str, size: int):
    if program == "chain":
        return models.chain(_chain_input(), size, np.tanh)
    return np.asarray(models.numpy_mlp_reference(_mlp_data(size))[0])


def first_result(kind: str, program: str, size: int):
    """Build, compile and run once; the numpy result (the chain's output or the loss)."""
    from bench import peers
    from bench.impls import theano_lib
    if kind == "numpy":
        if program == "chain":
            return models.chain(_chain_input(), size, np.tanh)
        d = _mlp_data(size)
        return models.numpy_mlp_step(d.params, d.X, d.y, d.lr)
    if kind == "jax jit":
        jax, jnp = peers.jax()
        if program == "chain":
            f = jax.jit(lambda x: models.chain(x, size, jnp.tanh))
            return np.asarray(f(jax.device_put(_chain_input())))
        d = _mlp_data(size)
        step = models.jax_mlp(jax, jnp, size, d.lr)
        loss, _ = step([jax.device_put(p) for p in d.params], d.X, d.y)
        return np.asarray(loss)
    th = theano_lib(kind)
    if program == "chain":
        x = th.T.dvector("x")
        f = th.function([x], models.chain(x, size, th.T.tanh), steady=False)
        return np.asarray(f(_chain_input()))
    d = _mlp_data(size)
    f, _ = models.theano_mlp(th, d)
    return np.asarray(f(d.X, d.y))


def _import(kind: str) -> None:
    from bench import peers
    from bench.impls import theano_lib
    if kind == "jax jit":
        jax, _ = peers.jax()
        cache = os.environ.get("BENCH_JAX_CACHE")
        if cache:
            jax.config.update("jax_compilation_cache_dir", cache)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    elif kind != "numpy":
        theano_lib(kind)


def child_main(kind: str, program: str, size: int) -> None:
    t0 = time.perf_counter()
    _import(kind)
    t1 = time.perf_counter()
    result = first_result(kind, program, size)
    t2 = time.perf_counter()
    print("@@RESULT " + json.dumps({"import_s": t1 - t0, "first_s": t2 - t1,
                                    "result": np.asarray(result, dtype=float).tolist()}))


# ---------------------------------------------------------------------------------------------
# The parent side: fresh processes with cold or warm cache directories


class _CacheDirs:
    """One cache directory per (kind, program); removed at exit."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="bench_e_")
        atexit.register(shutil.rmtree, self.base, True)
        self.primed: dict = {}

    def fresh(self, kind: str, program: str) -> str:
        d = tempfile.mkdtemp(prefix=f"{kind.replace(' ', '_')}_{program}_", dir=self.base)
        self.primed[(kind, program)] = d
        return d


def cache_env(kind: str, cache_dir: str) -> dict:
    env = dict(os.environ)
    if kind == "vmc":
        flags = [f for f in env.get("VMC_FLAGS", "").split(",")
                 if f and not f.startswith("compiledir=")]
        env["VMC_FLAGS"] = ",".join(flags + [f"compiledir={cache_dir}"])
        env["VMC_COMPILEDIR"] = cache_dir
    elif kind.startswith("pytensor"):
        flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",")
                 if f and not f.startswith("compiledir=")]
        env["PYTENSOR_FLAGS"] = ",".join(flags + [f"compiledir={cache_dir}"])
        env["NUMBA_CACHE_DIR"] = os.path.join(cache_dir, "numba")
    elif kind == "jax jit":
        env["BENCH_JAX_CACHE"] = cache_dir
    return env


def run_fresh(kind: str, program: str, size: int, cache_dir: str, timeout: float = 600):
    cmd = [sys.executable, "-m", "bench.bench_e_compile", "--child", kind, program, str(size)]
    p = subprocess.run(cmd, env=cache_env(kind, cache_dir), capture_output=True, text=True,
                       timeout=timeout, cwd=os.getcwd())
    for line in p.stdout.splitlines():
        if line.startswith("@@RESULT "):
            return json.loads(line[len("@@RESULT "):])
    tail = " | ".join((p.stdout + p.stderr).strip().splitlines()[-4:])
    raise RuntimeError(f"fresh process exited with {p.returncode}: {tail[-500:]}")


def _builder(kind, program, size, warm, n_samples, dirs):
    def build():
        if kind != "numpy":
            _check_importable(kind)
        if warm:
            d = dirs.primed.get((kind, program))
            if d is None:
                d = dirs.fresh(kind, program)
                run_fresh(kind, program, size, d)          # fill the cache first
            runs = [run_fresh(kind, program, size, d) for _ in range(n_samples)]
        else:
            runs = [run_fresh(kind, program, size, dirs.fresh(kind, program))
                    for _ in range(n_samples)]
        imports = sorted(r["import_s"] for r in runs)
        return Measured([r["first_s"] for r in runs], result=np.asarray(runs[-1]["result"]),
                        extra={"import_s": imports[len(imports) // 2],
                               "samples": len(runs)})
    return build


def _skip_quick():
    raise Skipped("--quick: a cold PyTensor C cache takes about a minute to fill; the "
                  "full run measures it")


def _check_importable(kind: str) -> None:
    """Fail (or report missing) here, in the group's process, rather than in a fresh one."""
    from bench.impls import theano_lib
    from bench import peers
    if kind == "jax jit":
        peers.jax()
    else:
        theano_lib(kind)


def derive(rows) -> None:
    for r in rows:
        if r.ok:
            r.cols["import"] = f"{r.extra.get('import_s', float('nan')):.2f} s"
            r.cols["samples"] = str(r.extra.get("samples", ""))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit("usage: python -m bench.bench_e_compile --child KIND PROGRAM SIZE")
