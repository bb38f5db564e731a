"""Running benchmark groups in child processes.

Every group (A..J) runs in its own ``python -m bench._child`` process, with the single-thread
environment set and pinned to one core. The child writes one JSON line per event to a file:
``start`` before an impl is built and checked, ``sample`` before each calibration and timing
sample of an impl while the impls of its case are timed together (``harness.run_case``),
``row`` when a row is final, ``done`` at the end. The watchdog counts the time since the last
event: the ``sample`` heartbeats let the interleaved rounds of a case run far longer than one
row used to, while a single hung sample is still caught. When the child dies (a segfault in
a half-built extension, an abort, an impl that gives no sign of progress within the time
limit), the parent records the impl named by the last ``start`` or ``sample`` as ``failed
(crashed: ...)`` and starts a new child that skips every row already reported (the rows of
the case that were still waiting for their timing are built and timed again). So one broken
impl costs one row, not the run. Rows come back in the order of the cases' impls, whatever
order they were reported in.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable

from bench.harness import Row, Settings, run_case

GROUPS = {
    "A": "bench.bench_a_overhead",
    "B": "bench.bench_b_elemwise",
    "C": "bench.bench_c_mlp",
    "D": "bench.bench_d_rnn",
    "E": "bench.bench_e_compile",
    "F": "bench.bench_f_memory",
    "G": "bench.bench_g_dispatch",
    "H": "bench.bench_h_gpu",
    "I": "bench.bench_i_conv",
    "J": "bench.bench_j_mpi",
}

SEP = "\x1f"


ALL = 0       # --threads all: every peer at its default threading, on every allowed CPU


def parse_threads(text: str) -> int:
    """``--threads``: a positive number, or "all" (``ALL``)."""
    if text.strip().lower() == "all":
        return ALL
    n = int(text)
    if n < 1:
        raise ValueError(f"--threads must be a positive number or 'all', got {text!r}")
    return n


def thread_env(threads: int = 1) -> dict:
    """Environment that keeps BLAS, OpenMP, numexpr, XLA and torch to ``threads`` threads;
    with ``ALL``, sets none of them (each peer keeps its default)."""
    if threads == ALL:
        return {"BENCH_THREADS": "all", "TF_CPP_MIN_LOG_LEVEL": "2"}
    n = str(threads)
    env = {k: n for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                          "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
                          "NUMEXPR_MAX_THREADS", "NUMBA_NUM_THREADS",
                          "TORCHINDUCTOR_COMPILE_THREADS", "BENCH_THREADS")}
    if threads == 1:
        env["XLA_FLAGS"] = ("--xla_cpu_multi_thread_eigen=false "
                            "intra_op_parallelism_threads=1")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def apply_thread_env(threads: int = 1) -> None:
    """Set the thread environment in this process; call before any peer is imported."""
    for k, v in thread_env(threads).items():
        if k == "XLA_FLAGS" and os.environ.get("XLA_FLAGS"):
            if "multi_thread_eigen" not in os.environ["XLA_FLAGS"]:
                os.environ[k] = os.environ["XLA_FLAGS"] + " " + v
            continue
        os.environ[k] = v


def pin(threads: int = 1, cpus: list | None = None) -> list | None:
    """Pin this process to ``cpus`` (default: the last ``threads`` CPUs it may run on; with
    ``ALL``, all of them)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = cpus or sorted(os.sched_getaffinity(0))[-threads if threads != ALL else 0:]
    try:
        os.sched_setaffinity(0, set(cpus))
    except OSError:
        return None
    return cpus


def load_group(letter: str):
    """The module of group ``letter``; any other name is imported as a module (for tests)."""
    return importlib.import_module(GROUPS.get(letter, letter))


# ---------------------------------------------------------------------------------------------
# Child side


def child_main(argv: list | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._child")
    p.add_argument("--group", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--skip-file")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=parse_threads, default=1)
    p.add_argument("--cpus", default="", help="comma-separated CPUs to pin to")
    a = p.parse_args(argv)
    apply_thread_env(a.threads)
    pin(a.threads, [int(c) for c in a.cpus.split(",") if c] or None)
    skip = set()
    if a.skip_file and os.path.exists(a.skip_file):
        with open(a.skip_file) as f:
            skip = set(json.load(f))
    cfg = Settings.make(a.quick, a.threads)
    with open(a.events, "a", buffering=1) as events:
        def emit(ev: dict) -> None:
            events.write(json.dumps(ev) + "\n")
            events.flush()
        run_group_here(a.group, cfg, skip, emit)
        emit({"event": "done"})
    return 0


def run_group_here(letter: str, cfg: Settings, skip: set, emit: Callable[[dict], None]) -> None:
    """Run the rows of one group in this process, reporting each through ``emit``."""
    import gc
    mod = load_group(letter)
    for ci, case in enumerate(mod.cases(cfg)):
        todo = [impl for impl in case.impls if case.name + SEP + impl.name not in skip]
        if todo:
            run_case(letter, case, cfg, todo, **_case_events(ci, case, emit))
            gc.collect()


def _case_events(ci: int, case, emit: Callable[[dict], None]) -> dict:
    """``run_case``'s callbacks, as events. ``order`` in ``start`` is (case index, impl index):
    timed rows are reported after the rows that ended at their check, and the parent puts
    them back in the impls' order."""
    order = {impl.name: [ci, ii] for ii, impl in enumerate(case.impls)}

    def key(impl_name: str) -> str:
        return case.name + SEP + impl_name

    def on_start(impl) -> None:
        emit({"event": "start", "key": key(impl.name), "unit": case.unit, "meta": case.meta,
              "order": order[impl.name]})

    def on_sample(row: Row) -> None:
        emit({"event": "sample", "key": key(row.impl)})

    def on_row(row: Row) -> None:
        emit({"event": "row", "row": row.to_json()})
    return {"on_start": on_start, "on_sample": on_sample, "on_row": on_row}


# ---------------------------------------------------------------------------------------------
# Parent side


class _Events:
    """Reads the child's event file as it grows."""

    def __init__(self, path: str):
        self.path, self.pos = path, 0

    def read(self) -> list:
        try:
            with open(self.path) as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return []
        complete = data[:data.rfind("\n") + 1]
        self.pos += len(complete.encode())
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


def _tail(path: str, n: int = 6) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [ln.rstrip() for ln in f.readlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[-600:]


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_group(letter: str, quick: bool, threads: int, row_timeout_s: float,
              on_row: Callable[[Row], None] | None = None, cpus: list | None = None) -> list:
    """Run one group in child processes until every row is reported; returns the rows, in
    the order of the cases and their impls.

    ``row_timeout_s``: how long the child may go without an event (a row, the start of an
    impl, a timing sample) before it is killed; ``cpus``: where the child is pinned (default:
    the last ``threads`` CPUs)."""
    rows, done, starts = [], [], {}
    with tempfile.TemporaryDirectory(prefix=f"bench_{letter}_") as tmp:
        events_path, skip_path = os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "skip")
        log_path = os.path.join(tmp, "child.log")
        for _attempt in range(200):
            with open(skip_path, "w") as f:
                json.dump(done, f)
            open(events_path, "w").close()
            cmd = [sys.executable, "-m", "bench._child", "--group", letter, "--events",
                   events_path, "--skip-file", skip_path,
                   "--threads", "all" if threads == ALL else str(threads)]
            cmd += ["--quick"] if quick else []
            cmd += ["--cpus", ",".join(map(str, cpus))] if cpus else []
            with open(log_path, "w") as log:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
                finished, current, why = _watch(proc, _Events(events_path), row_timeout_s,
                                                rows, done, on_row, starts)
            if finished:
                break
            if current is None:
                r = Row(letter, "(group)", "all", "failed",
                        reason=f"the group's process {why} before any row: {_tail(log_path)}")
                rows.append(r)
                if on_row:
                    on_row(r)
                break
            case, impl = current["key"].split(SEP, 1)
            r = Row(letter, case, impl, "failed", unit=current.get("unit", "s"),
                    meta=current.get("meta", {}),
                    reason=f"crashed: the process {why}; last output: {_tail(log_path)}")
            rows.append(r)
            done.append(current["key"])
            if on_row:
                on_row(r)
    return _in_impl_order(rows, starts)


def _in_impl_order(rows: list, starts: dict) -> list:
    """``rows`` sorted by the ``order`` of their ``start`` events (rows without one last)."""
    def pos(r: Row) -> tuple:
        ev = starts.get(r.case + SEP + r.impl) or {}
        return tuple(ev.get("order") or (float("inf"),))
    return sorted(rows, key=pos)


def _watch(proc, events, row_timeout_s, rows, done, on_row, starts):
    """Follow one child until it ends; returns (finished, running start event, why it died).

    ``starts`` collects the ``start`` events by key: a ``sample`` event names the impl being
    timed by its key, and the final sort needs each row's ``order``."""
    state = {"current": None, "finished": False}

    def consume() -> bool:
        got = False
        for ev in events.read():
            got = True
            if ev["event"] == "start":
                state["current"] = starts[ev["key"]] = ev
            elif ev["event"] == "sample":
                state["current"] = starts.get(ev["key"], {"key": ev["key"]})
            elif ev["event"] == "row":
                r = Row.from_json(ev["row"])
                rows.append(r)
                done.append(r.case + SEP + r.impl)
                state["current"] = None
                if on_row:
                    on_row(r)
            elif ev["event"] == "done":
                state["finished"] = True
        return got

    last = time.monotonic()
    while True:
        rc = proc.poll()
        if consume():
            last = time.monotonic()
        if state["finished"]:
            proc.wait()
            return True, None, ""
        if rc is not None:
            consume()
            if state["finished"]:
                return True, None, ""
            why = f"died by signal {-rc}" if rc < 0 else f"exited with status {rc}"
            return False, state["current"], why
        if time.monotonic() - last > row_timeout_s:
            _kill(proc)
            consume()
            return False, state["current"], \
                f"was killed after {row_timeout_s:.0f} s without progress (no result, " \
                f"no timing sample)"
        time.sleep(0.1)
