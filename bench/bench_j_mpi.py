"""J. Data parallelism over MPI: the MLP 784-500-10 training step (bench C's model), weak
scaling from 1 process with batch 128 to 2 ranks with batch 128 each (a global batch of 256).

Each run is a fresh job (``bench/mpi_step.py``; ``mpiexec -n 2`` from ``bench.mpi_launch``,
loopback only, one BLAS thread per rank, the group's one-CPU pinning lifted so that the
ranks may use every CPU): 3 warm-up steps, then repeats of 20 steps, each repeat started at
a barrier; a sample is the time per global step of one repeat on the slowest rank. The
configurations run in turn, round after round (3 rounds, 1 with --quick), so that the
machine's load weighs on all of them alike; `load` is the 1-minute load average over the
rounds. Rows:

- ``vmc 1 process``: the step without collectives (the weak-scaling baseline);
- ``vmc 2 ranks``: gradients and loss through ``vmc.distributed.allreduce(.., "mean")``;
- ``vmc 2 ranks, no overlap``: the same graph with the start/wait placement turned off, so
  each wait follows its start and nothing overlaps;
- ``torch 1 process`` and ``torch gloo DDP 2 ranks`` (``DistributedDataParallel``, gloo
  over loopback), where torch is installed.

``efficiency`` is the 1-process time over the 2-rank time of the same library;
``hidden`` the share of the collectives' time that vmc's start/wait placement hides: one
minus the time per step in the start and wait instructions (from the profiler) with the
placement over the same without it, measured in alternation in one job (that time
includes waiting for the slower rank, which no placement hides). Every row is checked after one step on the global batch against numpy.
"""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys

import numpy as np

from bench import models
from bench.harness import Case, Impl, Measured, Missing
from bench.mpi_launch import all_cpus, run as mpirun

TITLE = "MPI data parallel: MLP 784-500-10 step, weak scaling 1 -> 2 ranks (lower is better)"
BLURB = ("vmc's target (issue 19): weak-scaling efficiency (1-process time over 2-rank time "
         "per global step) at least 0.85 on 2 ranks, float32 and float64.")
COLUMNS = ("efficiency", "hidden", "load")
SIZES = [784, 500, 10]
BATCH = 128
IMPLS = (("vmc 1 process", "vmc-1"), ("vmc 2 ranks", "vmc"),
         ("vmc 2 ranks, no overlap", "vmc-adjacent"), ("torch 1 process", "torch-1"),
         ("torch gloo DDP 2 ranks", "torch"))
RUN_TIMEOUT = 600


def cases(cfg) -> list:
    out = []
    for dtype in ("float64", "float32"):
        data = models.mlp_data(SIZES, 2 * BATCH, dtype)
        tol = {} if dtype == "float64" else {"rtol": 1e-3, "atol": 1e-4}
        session = Session(dtype, cfg.quick)
        out.append(Case(f"{'-'.join(map(str, SIZES))} b{BATCH}/rank {dtype}",
                        lambda d=data: models.numpy_mlp_reference(d),
                        [Impl(name, session.builder(name)) for name, _ in IMPLS], **tol))
    return out


class Session:
    """Runs every configuration of one case in turn, round after round, on the first
    request; then hands each impl its samples."""

    def __init__(self, dtype, quick):
        self.dtype, self.quick = dtype, quick
        self.results = None

    def builder(self, name):
        def build():
            if self.results is None:
                self.results = self._run_all()
            got = self.results[name]
            if isinstance(got, Exception):
                raise got
            return got
        return build

    def _run_all(self):
        rounds = 1 if self.quick else 3
        runs = {name: [] for name, _ in IMPLS}
        errors = {}
        for _ in range(rounds):
            for name, impl in IMPLS:
                if name in errors:
                    continue
                try:
                    runs[name].append(self._one(impl))
                except (Missing, RuntimeError, subprocess.TimeoutExpired) as exc:
                    errors[name] = exc
        results = dict(errors)
        loads = [x for rs in runs.values() for r in rs for x in r["load"]]
        load = statistics.mean(loads) if loads else float("nan")
        for name, rs in runs.items():
            if name in errors:
                continue
            extra = {"load": load, "ranks": rs[0]["ranks"]}
            if "hidden" in rs[0]:
                extra["hidden"] = statistics.median(r["hidden"] for r in rs)
                extra["exposed_s"] = statistics.median(r["exposed_s"] for r in rs)
                extra["adjacent_s"] = statistics.median(r["adjacent_s"] for r in rs)
                extra["alone_s"] = statistics.median(r["alone_s"] for r in rs)
            results[name] = Measured([t for r in rs for t in r["times"]],
                                     result=[np.asarray(c, self.dtype) for c in rs[0]["check"]],
                                     extra=extra)
        return results

    def _one(self, impl):
        if impl.startswith("torch") and importlib.util.find_spec("torch") is None:
            raise Missing("torch not installed; pip install torch (a CPU build)")
        steps, repeats = (5, 2) if self.quick else (20, 5)
        args = ["-m", "bench.mpi_step", "--impl", impl, "--dtype", self.dtype,
                "--batch", str(BATCH), "--steps", str(steps), "--repeats", str(repeats),
                "--port", str(_free_port())]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {"PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        if impl.endswith("-1"):
            proc = _plain(args, env)
        else:
            proc = mpirun(2, args, RUN_TIMEOUT, env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{impl} exited with {proc.returncode}: "
                               f"{proc.stderr.strip()[-600:]}")
        return json.loads(lines[-1][len("RESULT "):])


def _plain(args, env):
    full = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    full.update(env)
    return subprocess.run([sys.executable] + args, capture_output=True, text=True, env=full,
                          timeout=RUN_TIMEOUT, preexec_fn=all_cpus)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def derive(rows) -> None:
    one = {(r.case, r.impl.split()[0]): r.median for r in rows
           if r.ok and "1 process" in r.impl}
    for r in rows:
        if not r.ok:
            continue
        base = one.get((r.case, r.impl.split()[0]))
        if "ranks" in r.impl and base:
            r.cols["efficiency"] = f"{base / r.median:.2f}"
        if "hidden" in r.extra:
            r.cols["hidden"] = f"{r.extra['hidden']:.2f}"
        r.cols["load"] = f"{r.extra.get('load', float('nan')):.1f}"
