"""Tests of the benchmark harness itself (bench/harness.py, bench/runner.py).

Fast (a few seconds) and free of timing assertions: they check that the machinery measures,
checks, reports and survives, not how fast anything is.
"""
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import harness, peers, runner, timing  # noqa: E402
from bench.harness import (Case, Impl, Measured, Missing, Reference, Row, Runner,  # noqa: E402
                           Settings, Skipped)

QUICK = Settings(quick=True, repeats=3, target_s=0.001, budget_s=0.02)


def run(impl, reference, **case_kw):
    case = Case("case", reference, [impl], **case_kw)
    return harness.run_impl("T", case, impl, Reference(reference), QUICK)


# ---------------------------------------------------------------------------------------------
# Timing


def test_measure_orders_its_statistics():
    t = harness.measure(sum, (range(100),), repeats=5, target_s=0.001, budget_s=0.05)
    assert t.min <= t.q1 <= t.median <= t.q3 <= t.max
    assert t.median > 0 and t.number >= 1 and 3 <= t.repeats <= 5


def test_measure_reports_seconds_per_call():
    # sleep never returns early, so the median of one call is at least the sleep, in seconds
    t = harness.measure(time.sleep, (0.002,), repeats=3, target_s=0.001, budget_s=0.05)
    assert 0.002 <= t.median < 10
    assert t.number == 1                      # one call already exceeds the target


def test_quartiles_of_one_and_many():
    assert harness.quartiles([3.0]) == (3.0, 3.0, 3.0)
    q1, med, q3 = harness.quartiles([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (q1, med, q3) == (2.0, 3.0, 4.0)


def test_round_count_fits_the_budget():
    assert harness.Settings().repeats == 15
    assert timing.round_count(15, 6.0, 0.1) == 15      # fits: every repeat
    assert timing.round_count(15, 6.0, 1.0) == 6       # budget-bound
    assert timing.round_count(15, 6.0, 100.0) == 3     # never fewer than 3


# ---------------------------------------------------------------------------------------------
# Interleaved timing of a case's impls: fake runners log their calls, so the order is checked,
# never the clock


ROUNDS = Settings(quick=True, repeats=4, target_s=0.0, budget_s=1e6)   # 4 rounds, number=1


def logging_impl(name, log, fail_at=None):
    """An impl whose every call appends ``name`` to ``log``; its call number ``fail_at`` (the
    first is 1) raises."""
    def call():
        log.append(name)
        if fail_at is not None and log.count(name) == fail_at:
            raise ValueError(f"{name} broke")
        return 1.0
    return Impl(name, lambda: Runner(call))


def test_rounds_alternate_between_impls_and_rotate_the_start():
    log = []
    impls = [logging_impl(n, log) for n in "abc"]
    rows = harness.run_case("T", Case("c", lambda: 1.0, impls), ROUNDS)
    assert [r.status for r in rows] == ["ok"] * 3
    assert all(r.repeats == 4 and r.number == 1 for r in rows)
    assert log[:3] == ["a", "b", "c"]                  # first calls (the check), in order
    calibration = log[3:-12]                           # warm-up and loop sizing, one by one
    assert calibration == sorted(calibration) and set(calibration) == set("abc")
    assert log[-12:] == list("abc" "bca" "cab" "abc")  # round r starts at impl r mod 3


def test_rotation_goes_past_every_impl():
    starts = []
    slots = [timing.Slot(lambda i=i: starts.append(i)) for i in range(3)]
    rounds = timing.interleave(slots, repeats=5, target_s=0.0, budget_s=1e6)
    assert rounds == 5 and all(len(s.samples) == 5 for s in slots)
    assert starts[-15:][::3] == [0, 1, 2, 0, 1]


def test_runner_raising_mid_rounds_fails_alone():
    log = []
    # b's calls: 1 first call, 2 warm-up, 3 calibration loop, 4 round 0, 5 round 1: raises
    impls = [logging_impl("a", log), logging_impl("b", log, fail_at=5),
             logging_impl("c", log)]
    rows = harness.run_case("T", Case("c", lambda: 1.0, impls), ROUNDS)
    by = {r.impl: r for r in rows}
    assert by["b"].status == "failed"
    assert by["b"].reason.startswith("timing: ValueError: b broke")
    assert by["b"].median is None
    assert by["a"].status == by["c"].status == "ok"
    assert by["a"].repeats == by["c"].repeats == 4
    assert log[-10:] == list("abc" "bca" "ca" "ac")    # b dropped after it raised in round 1


def test_run_case_statuses_order_and_events():
    log, events = [], []

    def raising(exc):
        def build():
            raise exc
        return build
    x = np.arange(3.0)
    impls = [logging_impl("ok1", log),
             Impl("ghost", raising(Missing("ghost not installed"))),
             Impl("gpu", raising(Skipped("no GPU"))),
             Impl("broken", raising(RuntimeError("no build"))),
             Impl("off", lambda: Runner(lambda: 2.0)),
             Impl("self", lambda: Measured([3.0, 1.0, 2.0], result=1.0)),
             logging_impl("ok2", log),
             Impl("first", lambda: Runner(lambda: 1 / 0))]
    rows = harness.run_case("T", Case("c", lambda: x[0] + 1, impls), ROUNDS,
                            on_start=lambda i: events.append(("start", i.name)),
                            on_sample=lambda r: events.append(("sample", r.impl)),
                            on_row=lambda r: events.append(("row", r.impl)))
    assert [(r.impl, r.status) for r in rows] == [
        ("ok1", "ok"), ("ghost", "missing"), ("gpu", "skipped"), ("broken", "failed"),
        ("off", "WRONG"), ("self", "ok"), ("ok2", "ok"), ("first", "failed")]
    assert rows[5].median == 2.0 and rows[5].repeats == 3       # Measured: its own samples
    assert rows[7].reason.startswith("first call: ZeroDivisionError")
    assert all(r.wall_s > 0 for r in rows)
    # each row is reported once; rows final at their check at once, timed ones after the
    # rounds, whose samples alternate between the two runners
    assert [e for e in events if e[0] == "start"] == [("start", i.name) for i in impls]
    assert sorted(e[1] for e in events if e[0] == "row") == sorted(i.name for i in impls)
    assert events[-2:] == [("row", "ok1"), ("row", "ok2")]
    samples = [e[1] for e in events if e[0] == "sample"]
    assert samples == ["ok1", "ok2"] + ["ok1", "ok2", "ok2", "ok1"] * 2
    assert events.index(("row", "ghost")) < events.index(("start", "gpu"))


# ---------------------------------------------------------------------------------------------
# The oracle


def test_correct_result_is_timed():
    x = np.arange(5.0)
    row = run(Impl("numpy", lambda: Runner(np.add, (x, 1))), lambda: x + 1)
    assert row.status == "ok" and row.median > 0 and row.repeats >= 3


def test_wrong_result_is_flagged_and_not_timed():
    x = np.arange(5.0)
    row = run(Impl("bad", lambda: Runner(np.add, (x, 2))), lambda: x + 1)
    assert row.status == "WRONG"
    assert "max abs error 1" in row.reason
    assert row.median is None


def test_check_shapes_lists_and_dtypes():
    a = np.ones((2, 3))
    assert harness.check(a, a) is None
    assert "shape" in harness.check(np.ones(3), a)
    assert harness.check([1.0, a], [np.asarray(1.0), a]) is None
    assert "output 1" in harness.check([1.0, a + 1], [1.0, a])
    assert "expected 2 outputs" in harness.check([a], [a, a])
    assert "float64" in harness.check(np.ones(3), np.ones(3, np.float32))


def test_tolerance_follows_the_dtype():
    want32 = np.ones(4, np.float32)
    assert harness.check(want32 * (1 + 1e-5), want32) is None           # fine in float32
    assert harness.check(np.ones(4) * (1 + 1e-5), np.ones(4)) is not None  # not in float64


def test_result_hook_is_checked_instead_of_the_return_value():
    w = np.zeros(3)

    def step():
        w[:] += 1.0
    row = run(Impl("upd", lambda: Runner(step, result=lambda _: w.copy())), lambda: np.ones(3))
    assert row.status == "ok"


def test_failures_become_statuses():
    def boom():
        raise ZeroDivisionError("no")
    row = run(Impl("x", boom), lambda: 1.0)
    assert row.status == "failed" and "build: ZeroDivisionError: no" in row.reason
    row = run(Impl("x", lambda: Runner(boom)), lambda: 1.0)
    assert row.status == "failed" and row.reason.startswith("first call: ZeroDivisionError")
    row = run(Impl("x", lambda: Runner(float, (1,))), lambda: 1 / 0)
    assert row.status == "failed" and "numpy reference failed" in row.reason


def test_measured_rows_use_their_samples():
    row = run(Impl("m", lambda: Measured([3.0, 1.0, 2.0], result=np.ones(2))),
              lambda: np.ones(2), unit="MB")
    assert row.status == "ok" and row.median == 2.0 and row.unit == "MB"
    row = run(Impl("m", lambda: Measured([1.0], result=np.zeros(2))), lambda: np.ones(2))
    assert row.status == "WRONG"


# ---------------------------------------------------------------------------------------------
# Missing peers


def test_missing_peer_is_reported_as_missing():
    with pytest.raises(Missing, match="not installed"):
        peers._import_peer("surely_not_a_module_xyz", "surely-not")

    def build():
        peers._import_peer("surely_not_a_module_xyz", "surely-not")
    row = run(Impl("ghost", build), lambda: 1.0)
    assert row.status == "missing" and "pip install surely-not" in row.reason


def test_skipped_row_needs_no_reference():
    def build():
        raise Skipped("no CUDA device/pycuda")
    row = run(Impl("gpu", build), lambda: 1 / 0)
    assert row.status == "skipped"
    assert harness.cell_for(row) == "skipped: no CUDA device/pycuda"


def test_failing_import_is_remembered():
    calls = []

    def load():
        calls.append(1)
        raise RuntimeError("import vmc: broken")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="broken"):
            peers._once("test-broken-lib", load)
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------
# Tables and RESULTS.md


def _rows():
    def ok(impl, med):
        return Row("A", "x + 1", impl, "ok", median=med, q1=med * 0.9, q3=med * 1.1,
                   min=med * 0.8, max=med * 1.2, number=10, repeats=5)
    return [ok("numpy", 2e-6), ok("jax jit", 4e-6), ok("vmc", 1e-6),
            Row("A", "x + 1", "torch eager", "missing", reason="torch not installed")]


def test_ratios_against_numpy_and_best_peer():
    rows = _rows()
    harness.add_ratios(rows)
    by = {r.impl: r for r in rows}
    assert by["vmc"].cols["x numpy"] == "0.50"
    assert by["vmc"].cols["x best peer"] == "0.50"    # vmc is not its own peer
    assert by["numpy"].cols["x best peer"] == "1.00 (best)"
    assert by["jax jit"].cols["x numpy"] == "2.00"


def test_baseline_is_timed_in_the_rounds_unchecked_and_no_peer():
    # A copy of other bytes as the yardstick: its result differs from the case's, it is
    # timed among the impls, and it neither is the best peer nor gets ratios.
    log = []
    copy = Impl("copy", lambda: Runner(lambda: (log.append("copy"), 99.0)[1]), baseline=True)
    rows = harness.run_case("B", Case("c", lambda: 1.0, [logging_impl("vmc", log), copy]),
                            ROUNDS)
    assert [(r.impl, r.status) for r in rows] == [("vmc", "ok"), ("copy", "ok")]
    assert rows[1].meta["baseline"] and rows[1].repeats == 4
    assert log[-8:] == ["vmc", "copy", "copy", "vmc"] * 2    # the rounds, after calibration
    rows[0].median, rows[1].median = 2.0, 1.0                  # the baseline is faster...
    harness.add_ratios(rows)
    assert rows[0].cols["x best peer"] == "-"                  # ...but is not a peer
    assert "x best peer" not in rows[1].cols


def test_text_table_has_ratio_columns_and_reasons():
    rows = _rows()
    harness.add_ratios(rows)
    text = harness.format_text_table("A. overhead", rows)
    assert "x numpy" in text and "x best peer" in text and "IQR" in text
    assert "0.50" in text and "2.00" in text and "2.00 us" in text
    assert "missing (torch not installed)" in text


def test_results_markdown_header_has_machine_info():
    rows = _rows()
    harness.add_ratios(rows)
    info = harness.machine_info(threads=1, pinned=[1])
    md = harness.results_markdown(info, {"numpy": np.__version__, "vmc": "0.1.0"},
                                  [("A. overhead", rows, (), "blurb")], wall_s=12.0)
    assert md.startswith("# vmc benchmark results")
    assert "## Machine" in md and f"| cpu | {harness.cpu_model()} |" in md
    assert "| threads_used | 1 |" in md and f"| cores | {os.cpu_count()} |" in md
    assert f"| numpy | {np.__version__} |" in md
    assert "## A. overhead" in md and "| x numpy | x best peer |" in md
    assert "interleaved round by round" in md


def test_results_keep_the_one_thread_and_the_all_cores_reports():
    rows = _rows()
    harness.add_ratios(rows)
    versions = {"numpy": np.__version__}
    one = harness.results_markdown(harness.machine_info(1, [1]), versions,
                                   [("A. overhead", rows, (), "one")], 1.0)
    every = harness.results_markdown(harness.machine_info(runner.ALL, [0, 1]), versions,
                                     [("A. overhead", rows, (), "every")], 1.0)
    assert every.startswith("# vmc benchmark results: all cores")
    assert "| threads_used | all (2 CPUs, each peer at its default threading) |" in every
    both = harness.merge_results(one, every, all_cores=True)
    assert both.startswith(one) and both.endswith(every)
    assert harness.merge_results("", every, all_cores=True).count(harness.ALL_CORES_MARK) == 1
    one2 = one.replace("one", "one again")
    again = harness.merge_results(both, one2, all_cores=False)     # a new one-thread run
    assert again.startswith(one2) and again.endswith(every) and "| one |" not in again
    assert harness.merge_results(again, every, all_cores=True) == again


def test_threads_all_sets_no_thread_limit_and_uses_every_cpu():
    from bench.__main__ import cpu_slots
    assert runner.parse_threads("all") == runner.ALL and runner.parse_threads("2") == 2
    with pytest.raises(ValueError, match="positive number or 'all'"):
        runner.parse_threads("0")
    env = runner.thread_env(runner.ALL)
    assert "OMP_NUM_THREADS" not in env and "OPENBLAS_NUM_THREADS" not in env
    assert "XLA_FLAGS" not in env and env["BENCH_THREADS"] == "all"
    assert runner.thread_env(1)["OPENBLAS_NUM_THREADS"] == "1"
    assert cpu_slots(runner.ALL, 4) == [sorted(os.sched_getaffinity(0))]


def test_machine_table_names_the_isa_and_the_blas_core_type():
    from bench import peers
    got = peers.cpu_and_blas()
    from vmc.thunks.cgen.cache import isa
    assert got["isa"].startswith(isa()[0])
    assert "openblas" in got["blas_core_type"]
    set_here = [f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                if k in os.environ]
    assert got["openblas_env"] == (", ".join(set_here) or "unset")


# ---------------------------------------------------------------------------------------------
# The child-process runner: a crash costs one row


FAKE_GROUP = '''
import os
import numpy as np
from bench.harness import Case, Impl, Runner

TITLE = "fake"
COLUMNS = ()

def _crash():
    os._exit(3)

def cases(cfg):
    x = np.arange(3.0)
    return [Case("c", lambda: x + 1, [Impl("before", lambda: Runner(np.add, (x, 1))),
                                      Impl("crasher", _crash),
                                      Impl("after", lambda: Runner(np.add, (x, 1)))])]
'''


def test_runner_survives_a_crashing_row(tmp_path, monkeypatch):
    (tmp_path / "fake_bench_group.py").write_text(textwrap.dedent(FAKE_GROUP))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(tmp_path)]))
    monkeypatch.chdir(ROOT)
    rows = runner.run_group("fake_bench_group", quick=True, threads=1, row_timeout_s=60)
    by = {r.impl: r for r in rows}
    assert [r.impl for r in rows] == ["before", "crasher", "after"]
    assert by["before"].status == "ok" and by["after"].status == "ok"
    assert by["crasher"].status == "failed" and "exited with status 3" in by["crasher"].reason
    json.dumps([r.to_json() for r in rows])            # rows serialise for --json


SLOW_GROUP = '''
import time
from bench.harness import Case, Impl, Missing, Runner

TITLE = "slow"
COLUMNS = ()

def _nap():
    time.sleep(0.04)
    return 1.0

def _ghost():
    raise Missing("ghost not installed")

def cases(cfg):
    # 8 rounds of two runners, 0.12 s per sample: about 2 s of rounds, more than the
    # row timeout, but a timing sample starts every 0.12 s
    cfg.repeats, cfg.target_s, cfg.budget_s = 8, 0.1, 100.0
    return [Case("c", lambda: 1.0, [Impl("slow1", lambda: Runner(_nap)),
                                    Impl("ghost", _ghost),
                                    Impl("slow2", lambda: Runner(_nap))])]
'''


def test_runner_lets_a_case_time_longer_than_the_row_timeout(tmp_path, monkeypatch):
    (tmp_path / "slow_bench_group.py").write_text(textwrap.dedent(SLOW_GROUP))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(tmp_path)]))
    monkeypatch.chdir(ROOT)
    reported = []
    rows = runner.run_group("slow_bench_group", quick=True, threads=1, row_timeout_s=1.5,
                            on_row=lambda r: reported.append(r.impl))
    assert [(r.impl, r.status) for r in rows] == [("slow1", "ok"), ("ghost", "missing"),
                                                  ("slow2", "ok")]
    assert rows[0].repeats == rows[2].repeats == 8
    assert reported == ["ghost", "slow1", "slow2"]     # timed rows come after the rounds


LATE_CRASH_GROUP = '''
import os
from bench.harness import Case, Impl, Runner

TITLE = "late crash"
COLUMNS = ()
CALLS = [0]

def _dies_while_timed():
    CALLS[0] += 1
    if CALLS[0] == 5:          # after the first call (checked), the warm-up, some sizing
        os._exit(4)
    return 1.0

def cases(cfg):
    return [Case("c", lambda: 1.0, [Impl("before", lambda: Runner(float, (1,))),
                                    Impl("late crasher", lambda: Runner(_dies_while_timed)),
                                    Impl("after", lambda: Runner(float, (1,)))])]
'''


def test_runner_blames_the_impl_that_crashed_during_the_rounds(tmp_path, monkeypatch):
    (tmp_path / "late_crash_group.py").write_text(textwrap.dedent(LATE_CRASH_GROUP))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(tmp_path)]))
    monkeypatch.chdir(ROOT)
    rows = runner.run_group("late_crash_group", quick=True, threads=1, row_timeout_s=60)
    assert [(r.impl, r.status) for r in rows] == [("before", "ok"), ("late crasher", "failed"),
                                                  ("after", "ok")]
    assert "exited with status 4" in rows[1].reason
