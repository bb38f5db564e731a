"""The measuring core of ``bench/``: timing, the numpy oracle, result rows, tables, RESULTS.md.

A benchmark module (``bench_a_overhead.py`` ...) describes *cases*; each case has a numpy
*reference* and a list of *impls* (vmc, numpy, PyTensor, JAX, PyTorch, ...). For every impl the
harness builds it, calls it once and checks that first result against the reference; then the
impls that passed are timed together, their repeats interleaved round by round
(``bench.timing``), so that the machine's drifting speed weighs on all of them alike and the
ratios between them stay fair. Whatever goes wrong becomes the row's status, never an
exception out of the run:

    ok        timed; its result matched numpy
    WRONG     its result did not match numpy: not timed
    failed    building, calling or timing it raised (reason: the exception)
    missing   the peer is not installed (reason: the import error)
    skipped   not applicable here (reason says why)

Nothing in this module imports a peer or vmc.
"""
from __future__ import annotations

import math
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from bench.timing import Slot, Timing, interleave, measure, quartiles  # noqa: F401 - re-exported

# ---------------------------------------------------------------------------------------------
# Statuses and what an impl's build returns


class Missing(Exception):
    """The peer is not installed: the row is reported as ``missing (<reason>)``."""


class Skipped(Exception):
    """The impl does not apply here (no GPU, ...): the row is reported as ``skipped``."""


@dataclass
class Runner:
    """What ``Impl.build`` returns for a timed row.

    ``call(*args)`` is what gets timed (it must finish its work: JAX blocks, CUDA syncs).
    ``result(first_output)``, when given, is what gets checked against the reference (read
    after the first call: parameters after one training step, say); otherwise the first
    call's return value is checked.
    """
    call: Callable
    args: tuple = ()
    result: Callable[[Any], Any] | None = None


@dataclass
class Measured:
    """What ``Impl.build`` returns when it measured itself (compile time, memory: groups E, F).

    ``samples`` are values of the case's unit (lower is better); ``result`` is checked against
    the reference; ``extra`` holds numbers for the group's extra columns.
    """
    samples: list
    result: Any = None
    extra: dict = field(default_factory=dict)


@dataclass
class Impl:
    """``baseline``: a yardstick timed in the same rounds as the case's impls (a copy of the
    same bytes, say) so that ratios to it see the same machine; its result is not checked,
    and it is neither the numpy row nor a peer."""
    name: str
    build: Callable[[], Runner | Measured]
    baseline: bool = False


@dataclass
class Case:
    name: str
    reference: Callable[[], Any]
    impls: list
    rtol: float | None = None
    atol: float | None = None
    unit: str = "s"              # "s" (time) or "MB" (memory); lower is better
    meta: dict = field(default_factory=dict)


@dataclass
class Row:
    group: str
    case: str
    impl: str
    status: str
    reason: str = ""
    unit: str = "s"
    median: float | None = None
    q1: float | None = None
    q3: float | None = None
    min: float | None = None
    max: float | None = None
    number: int = 0              # inner loop count of one repeat
    repeats: int = 0             # samples: the rounds of its case it was timed in
    extra: dict = field(default_factory=dict)   # numbers measured by the impl itself
    meta: dict = field(default_factory=dict)    # the case's meta (bytes moved, steps, ...)
    cols: dict = field(default_factory=dict)    # formatted extra columns, filled by derive()
    wall_s: float = 0.0          # build + check + this row's own calibration and samples

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.median is not None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Row":
        return cls(**d)


def is_vmc(impl: str) -> bool:
    return impl == "vmc" or impl.startswith("vmc ")


def is_numpy(impl: str) -> bool:
    return impl == "numpy" or impl.startswith("numpy ")


def describe_exception(exc: BaseException, limit: int = 500) -> str:
    """``Type: first lines of the message`` plus where it was raised, in one line."""
    msg = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        last = tb[-1]
        text += f" [at {os.path.basename(last.filename)}:{last.lineno}]"
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# The oracle


def to_numpy(x: Any) -> Any:
    """numpy view of a peer's result: torch tensors, JAX and pycuda arrays, nested lists."""
    if isinstance(x, (list, tuple)):
        return [to_numpy(v) for v in x]
    if hasattr(x, "detach") and hasattr(x, "cpu"):            # torch
        return x.detach().cpu().numpy()
    if hasattr(x, "get") and hasattr(x, "gpudata"):           # pycuda GPUArray
        return x.get()
    return np.asarray(x)


def default_tolerance(expected: Any) -> tuple:
    """(rtol, atol) by the reference's dtype: looser for float32 and half precision."""
    arrs = expected if isinstance(expected, (list, tuple)) else [expected]
    itemsize = min((np.asarray(a).dtype.itemsize for a in arrs
                    if np.asarray(a).dtype.kind == "f"), default=8)
    if itemsize >= 8:
        return 1e-6, 1e-8
    if itemsize == 4:
        return 1e-3, 1e-5
    return 1e-2, 1e-3


def check(result: Any, expected: Any, rtol: float | None = None,
          atol: float | None = None) -> str | None:
    """None when ``result`` matches ``expected`` (np.allclose), else what differs."""
    d_rtol, d_atol = default_tolerance(expected)
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    got, want = to_numpy(result), to_numpy(expected)
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            n = len(got) if isinstance(got, list) else "a single value"
            return f"expected {len(want)} outputs, got {n}"
        for i, (g, w) in enumerate(zip(got, want)):
            bad = check(g, w, rtol, atol)
            if bad:
                return f"output {i}: {bad}"
        return None
    if isinstance(got, list):
        return f"expected one output, got {len(got)}"
    got, want = np.asarray(got), np.asarray(want)
    if want.ndim and want.dtype == np.float32 and got.dtype == np.float64:
        return "computed in float64, expected float32"
    if got.shape != want.shape:
        if got.size == want.size == 1:
            got, want = got.reshape(()), want.reshape(())
        else:
            return f"shape {got.shape}, expected {want.shape}"
    if not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        with np.errstate(all="ignore"):
            err = np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))
        return f"max abs error {err:.3g} (rtol={rtol:g}, atol={atol:g})"
    return None


# ---------------------------------------------------------------------------------------------
# Running the impls of one case


@dataclass
class Settings:
    """How hard to measure: ``quick`` for checking the harness, full for RESULTS.md.

    ``repeats`` is the number of rounds of a case (one sample of each impl per round): the
    unit of fairness between impls, hence more of them than one impl alone would need.
    ``budget_s`` is per impl: a case of k runners gets about ``k * budget_s``.
    """
    quick: bool = False
    threads: int = 1
    repeats: int = 15
    target_s: float = 0.02
    budget_s: float = 2.0

    @classmethod
    def make(cls, quick: bool, threads: int = 1) -> "Settings":
        if quick:
            return cls(True, threads, repeats=3, target_s=0.005, budget_s=0.25)
        return cls(False, threads)


class Reference:
    """The case's numpy result, computed once, on first use; a failure is remembered."""

    def __init__(self, fn: Callable):
        self._fn, self._done, self._value, self._error = fn, False, None, None

    def get(self) -> Any:
        if not self._done:
            self._done = True
            try:
                self._value = self._fn()
            except Exception as exc:                      # noqa: BLE001 - reported per row
                self._error = f"the numpy reference failed: {describe_exception(exc)}"
        if self._error:
            raise RuntimeError(self._error)
        return self._value


def run_case(group: str, case: Case, cfg: Settings, impls: list | None = None,
             ref: Reference | None = None, *, on_start: Callable[[Impl], None] | None = None,
             on_row: Callable[[Row], None] | None = None,
             on_sample: Callable[[Row], None] | None = None) -> list:
    """Rows of ``impls`` (default: all the case's impls), in their order.

    Each impl is built, called once and checked in turn; a row that ends there (missing,
    skipped, failed, WRONG, or ``Measured``: it timed itself) is reported at once through
    ``on_row``. The runners that passed are then timed together, interleaved round by round
    (``bench.timing.interleave``), since timing them one after the other would put the
    machine's speed drift into their ratios; their rows are reported after the rounds.
    ``on_start(impl)`` comes before each build, ``on_sample(row)`` before each calibration and
    sample of a runner: heartbeats that tell a watchdog which row is running.
    """
    ref = ref if ref is not None else Reference(case.reference)
    rows, timed = [], []
    for impl in (case.impls if impls is None else impls):
        if on_start is not None:
            on_start(impl)
        t0 = time.monotonic()
        row, runner = _prepare(group, case, impl, ref)
        row.wall_s = time.monotonic() - t0
        rows.append(row)
        if runner is not None:
            timed.append((row, runner))
        elif on_row is not None:
            on_row(row)
    _time_together(timed, cfg, on_sample)
    if on_row is not None:
        for row, _ in timed:
            on_row(row)
    return rows


def run_impl(group: str, case: Case, impl: Impl, ref: Reference, cfg: Settings) -> Row:
    """Build, check and time one impl alone; every failure becomes the row's status."""
    return run_case(group, case, cfg, [impl], ref)[0]


def _prepare(group: str, case: Case, impl: Impl, ref: Reference) -> tuple:
    """``(row, runner)``: the runner to time, or None when the row is already final."""
    row = Row(group, case.name, impl.name, "failed", unit=case.unit, meta=dict(case.meta))
    if impl.baseline:
        row.meta["baseline"] = True
    try:
        built = impl.build()
    except Missing as exc:
        row.status, row.reason = "missing", str(exc)
        return row, None
    except Skipped as exc:
        row.status, row.reason = "skipped", str(exc)
        return row, None
    except Exception as exc:                              # noqa: BLE001 - reported
        row.reason = "build: " + describe_exception(exc)
        return row, None
    try:
        expected = ref.get()          # after build: a skipped or missing row needs none
    except RuntimeError as exc:
        row.reason = str(exc)
        return row, None
    if isinstance(built, Measured):
        return _finish_measured(row, case, built, expected), None
    try:
        out = built.call(*built.args)
        got = built.result(out) if built.result is not None else out
    except Exception as exc:                              # noqa: BLE001 - reported
        row.reason = "first call: " + describe_exception(exc)
        return row, None
    bad = None if impl.baseline else check(got, expected, case.rtol, case.atol)
    if bad:
        row.status, row.reason = "WRONG", bad
        return row, None
    return row, built


def _time_together(timed: list, cfg: Settings,
                   on_sample: Callable[[Row], None] | None) -> None:
    """Time the ``(row, runner)`` pairs interleaved and fill in their rows."""
    if not timed:
        return
    slots = [Slot(runner.call, runner.args) for _, runner in timed]
    before = (lambda i: on_sample(timed[i][0])) if on_sample is not None else None
    interleave(slots, repeats=cfg.repeats, target_s=cfg.target_s, budget_s=cfg.budget_s,
               before=before)
    for (row, _), slot in zip(timed, slots):
        row.wall_s += slot.busy_ns / 1e9
        if slot.error is not None:
            row.status, row.reason = "failed", "timing: " + describe_exception(slot.error)
            continue
        t = slot.timing()
        row.status, row.median, row.q1, row.q3 = "ok", t.median, t.q1, t.q3
        row.min, row.max, row.number, row.repeats = t.min, t.max, t.number, t.repeats


def _finish_measured(row: Row, case: Case, m: Measured, expected: Any) -> Row:
    row.extra = dict(m.extra)
    if m.result is not None:
        bad = check(m.result, expected, case.rtol, case.atol)
        if bad:
            row.status, row.reason = "WRONG", bad
            return row
    if not m.samples:
        row.reason = "no samples"
        return row
    q1, med, q3 = quartiles(m.samples)
    row.status, row.median, row.q1, row.q3 = "ok", med, q1, q3
    row.min, row.max, row.repeats, row.number = min(m.samples), max(m.samples), len(m.samples), 1
    return row


# ---------------------------------------------------------------------------------------------
# Ratios and formatting


def add_ratios(rows: list) -> None:
    """Fill ``cols['x numpy']`` and ``cols['x best peer']`` per case (value / reference value).

    The numpy row is the impl named ``numpy`` (or ``numpy ...``); the best peer is the
    fastest ok row of the case that is not vmc (numpy included). Baseline rows are neither,
    and get no ratios.
    """
    by_case: dict = {}
    for r in rows:
        by_case.setdefault((r.group, r.case), []).append(r)
    for case_rows in by_case.values():
        rated = [r for r in case_rows if r.ok and not r.meta.get("baseline")]
        np_row = next((r for r in rated if is_numpy(r.impl)), None)
        peers = [r for r in rated if not is_vmc(r.impl)]
        best = min(peers, key=lambda r: r.median, default=None)
        for r in rated:
            r.cols["x numpy"] = _ratio(r.median, np_row.median if np_row else None)
            r.cols["x best peer"] = _ratio(r.median, best.median if best else None)
        if best is not None:
            best.cols["x best peer"] = "1.00 (best)"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return "-"
    return f"{a / b:.2f}"


def fmt_value(v: float | None, unit: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if unit == "s":
        return fmt_time(v)
    if unit == "MB":
        return f"{v:.1f} MB"
    return f"{v:.4g} {unit}"


def fmt_time(s: float) -> str:
    a = abs(s)
    if a < 1e-6:
        return f"{s * 1e9:.1f} ns"
    if a < 1e-3:
        return f"{s * 1e6:.2f} us"
    if a < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def fmt_spread(r: Row) -> str:
    """``q1..q3 unit`` in the median's unit, or ``n=1`` for a single sample."""
    if r.q1 is None or r.q3 is None:
        return "-"
    if r.repeats <= 1:
        return "n=1"
    if r.unit != "s":
        return f"{r.q1:.4g}..{r.q3:.4g} {r.unit}"
    scale, unit = next(((f, u) for lim, f, u in ((1e-6, 1e9, "ns"), (1e-3, 1e6, "us"),
                                                  (1.0, 1e3, "ms")) if abs(r.median) < lim),
                       (1.0, "s"))
    digits = 1 if unit == "ns" else 2 if unit != "s" else 3
    return f"{r.q1 * scale:.{digits}f}..{r.q3 * scale:.{digits}f} {unit}"


def cell_for(r: Row) -> str:
    """The median column: the value, or the status with a short reason."""
    if r.ok:
        return fmt_value(r.median, r.unit)
    reason = r.reason if len(r.reason) <= 44 else r.reason[:41] + "..."
    if r.status == "skipped":
        return f"skipped: {reason}"
    return f"{r.status} ({reason})" if reason else r.status


BASE_COLUMNS = ("case", "impl", "median", "IQR", "x numpy", "x best peer")


def table_cells(rows: list, extra_columns: tuple = ()) -> tuple:
    """Header and string cells of one benchmark's table."""
    header = list(BASE_COLUMNS) + list(extra_columns)
    body = []
    for r in rows:
        cells = [r.case, r.impl, cell_for(r), fmt_spread(r) if r.ok else "",
                 r.cols.get("x numpy", ""), r.cols.get("x best peer", "")]
        cells += [r.cols.get(c, "") for c in extra_columns]
        body.append(cells)
    return header, body


def format_text_table(title: str, rows: list, extra_columns: tuple = ()) -> str:
    header, body = table_cells(rows, extra_columns)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)] if body else \
        [len(h) for h in header]
    lines = [title, "-" * len(title)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    prev_case = None
    for cells in body:
        if prev_case is not None and cells[0] != prev_case:
            lines.append("")
        shown = list(cells)
        if cells[0] == prev_case:
            shown[0] = ""
        prev_case = cells[0]
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(shown, widths)).rstrip())
    notes = footnotes(rows)
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)


def format_md_table(title: str, rows: list, extra_columns: tuple = (), blurb: str = "") -> str:
    header, body = table_cells(rows, extra_columns)
    out = [f"## {title}", ""]
    if blurb:
        out += [blurb, ""]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join("---" for _ in header) + "|")
    for cells in body:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    notes = footnotes(rows)
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def footnotes(rows: list) -> list:
    """Full reasons of the rows that are not ok, one line each."""
    return [f"{r.case} / {r.impl}: {r.status} ({r.reason})" for r in rows
            if not r.ok and r.reason]


# ---------------------------------------------------------------------------------------------
# Machine description and RESULTS.md


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def blas_name() -> str:
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{deps.get('name', '?')} {deps.get('version', '')}".strip()
    except Exception:                                     # noqa: BLE001 - cosmetic
        return "?"


def machine_info(threads: int, pinned: list | None = None) -> dict:
    mem = mem_total_gib()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads_used": threads if threads else f"all ({len(pinned or [])} CPUs, each peer "
                                                 f"at its default threading)",
        "pinned_to_cpus": pinned,
        "memory": f"{mem:.1f} GiB" if mem else "?",
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "numpy_blas": blas_name(),
        "load_average_at_start": load_average(),
    }


def load_average() -> str:
    """1, 5 and 15-minute load averages: other work on the machine skews the numbers."""
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


ALL_CORES_MARK = "<!-- bench: all cores (python -m bench --threads all) -->"


def merge_results(old: str, new: str, all_cores: bool) -> str:
    """RESULTS.md holds two reports: one pinned thread, then, after ALL_CORES_MARK, all
    cores. ``new`` replaces its own part of ``old`` and keeps the other."""
    one, _, every = old.partition(ALL_CORES_MARK)
    if all_cores:
        return (one.rstrip("\n") + "\n\n" if one.strip() else "") + ALL_CORES_MARK + "\n" + new
    return new + ("\n" + ALL_CORES_MARK + every if every.strip() else "")


def results_markdown(info: dict, versions: dict, sections: list, wall_s: float | None = None,
                     command: str = "python -m bench") -> str:
    """RESULTS.md: a header with machine and versions, then one table per benchmark.

    ``sections`` is a list of ``(title, rows, extra_columns, blurb)``.
    """
    every = str(info.get("threads_used", "")).startswith("all")
    out = ["# vmc benchmark results" + (": all cores" if every else ""), "",
           f"Produced by `{command}` on {info.get('date', '?')}"
           + (f" in {wall_s:.0f} s." if wall_s else "."), "",
           "Times are medians of repeats (each repeat an auto-sized inner loop); the repeats "
           "of one case's impls are interleaved round by round (one repeat of each impl per "
           "round, the first impl rotating), so that drift in the machine's speed weighs on "
           "all of them alike. Spread is the interquartile range. `x numpy` and `x best peer` "
           "are ratios of the median to numpy's and to the fastest non-vmc impl of the same "
           "case: below 1 means faster (for memory, smaller). Every row's first result was "
           "checked against numpy before it was timed.", "",
           "## Machine", "",
           "| | |", "|---|---|"]
    for key in ("cpu", "isa", "cores", "threads_used", "pinned_to_cpus", "memory", "os",
                "python", "numpy_blas", "blas_core_type", "openblas_env",
                "load_average_at_start", "load_average_at_end"):
        out.append(f"| {key} | {info.get(key, '?')} |")
    out += ["", "## Versions", "", "| package | version |", "|---|---|"]
    for name, ver in versions.items():
        out.append(f"| {name} | {ver} |")
    out.append("")
    for title, rows, extra, blurb in sections:
        out.append(format_md_table(title, rows, extra, blurb))
    return "\n".join(out)
