"""The per-call timeline of profiled functions (VM.set_trace, vmc.compile.timeline):
real timestamps, one track per thread, branches and scan steps nested, live bytes."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.compile.pyvm import TRACE_EVENT, ProfilingPyVM
from vmc.ifelse import ifelse
from vmc.program import THUNK, Program, int_array

from compile_helpers import linker, run_python  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("linker")


def _trace(f, tmp_path):
    path = tmp_path / "trace.json"
    assert f.profile.to_chrome_trace(str(path)) == str(path)
    return json.loads(path.read_text())["traceEvents"]


def _of(events, cat):
    return [e for e in events if e.get("cat") == cat]


def five_instructions():
    x = vt.dvector("x")
    y = vt.tanh(vt.exp(x) * x).sum()            # exp, mul, tanh, sum, and 2 * that
    with vmc.config.change(optimizer=None):
        f = vmc.function([x], y * np.float64(2), profile=True, name="five")
    assert f.program.n_instr == 5 and all(k == THUNK for k in f.program.kind)
    return f


def test_three_calls_of_five_instructions_make_fifteen_timed_events(tmp_path):
    f = five_instructions()
    xs = [np.arange(n, dtype=float) / n for n in (3, 4, 5)]
    for x in xs:
        f(x)
    events = _trace(f, tmp_path)
    ins = _of(events, "instruction")
    assert len(ins) == 15
    assert [e["args"]["pc"] for e in ins] == list(range(5)) * 3
    assert [e["args"]["call"] for e in ins] == [0] * 5 + [1] * 5 + [2] * 5
    assert len({e["tid"] for e in ins}) == 1
    end = -np.inf
    for e in sorted(ins, key=lambda e: e["ts"]):
        assert e["ts"] >= end - 1e-6 and e["dur"] >= 0      # increasing, no overlap (1e-6 us: float rounding)
        end = e["ts"] + e["dur"]
    # each duration lies within the instruction's measured time (ns, summed over calls)
    for run, evs in f.profile.trace:
        for e in evs:
            assert 0 <= e["t1"] - e["t0"] <= f.times[e["pc"]]
    # the calls' gaps are there: call k+1 starts after call k ends
    calls = sorted(_of(events, "call"), key=lambda e: e["ts"])
    assert len(calls) == 3
    for a, b in zip(calls, calls[1:]):
        assert b["ts"] >= a["ts"] + a["dur"] - 1e-6
    for c, call in enumerate(calls):     # instructions nest in their call
        mine = [e for e in ins if e["args"]["call"] == c]
        assert call["ts"] <= mine[0]["ts"] and mine[-1]["ts"] + mine[-1]["dur"] <= \
            call["ts"] + call["dur"] + 1e-3
    # shapes, dtypes and bytes of each event's output: exp(x) of call 2 is (5,) float64
    exp_event = ins[10]
    assert exp_event["args"]["shape"] == [5] and exp_event["args"]["dtype"] == "float64"
    assert exp_event["args"]["bytes allocated"] in (0, 40)     # 0: written in place


def test_only_the_last_calls_are_kept():
    with vmc.config.change(profile_trace_calls=2):
        f = five_instructions()
    for k in range(5):
        f(np.ones(k + 1))
    runs = f.profile.trace
    assert [r["seq"] for r, _ in runs] == [3, 4]
    assert [int(e["dims"][0]) for e in runs[1][1][:3]] == [5, 5, 5]
    f.profile.reset()
    assert f.profile.trace == []
    with vmc.config.change(profile_trace_calls=0):
        g = five_instructions()
    g(np.ones(2))
    assert g.profile.trace == []


def test_one_track_per_thread(tmp_path):
    f = five_instructions()
    both = threading.Barrier(2)      # both alive at once: thread idents are reused

    def work():
        both.wait()
        for _ in range(3):
            f(np.ones(50))
    threads = [threading.Thread(target=work, name=f"worker{k}") for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = _trace(f, tmp_path)
    ins = _of(events, "instruction")
    assert len(ins) == 30
    by_tid = {}
    for e in ins:
        by_tid.setdefault(e["tid"], []).append(e)
    assert len(by_tid) == 2
    for evs in by_tid.values():
        end = -np.inf
        for e in sorted(evs, key=lambda e: e["ts"]):
            assert e["ts"] >= end - 1e-6
            end = e["ts"] + e["dur"]
    names = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert len(names) == 2


def test_branches_and_scan_steps_nest_under_their_instruction(tmp_path):
    c, x = vt.lscalar("c"), vt.dvector("x")
    ys, _ = vmc.scan(lambda v, h: h * 0.5 + v, sequences=[x], outputs_info=[vt.zeros(())])
    f = vmc.function([c, x], ifelse(c > 0, ys[-1] * 2, vt.tanh(x).sum()), profile=True)
    f(1, np.ones(4))
    f(0, np.ones(4))
    events = _trace(f, tmp_path)
    branches = _of(events, "branch")
    assert [b["args"]["branch"] for b in branches] == ["then", "else"]
    ins = _of(events, "instruction")
    scan = next(e for e in ins if e["args"].get("op class") == "Scan")
    steps = _of(events, "scan step")
    assert len(steps) == 4

    def inside(a, b):
        return b["ts"] <= a["ts"] and a["ts"] + a["dur"] <= b["ts"] + b["dur"] + 1e-3
    assert all(inside(s, scan) for s in steps)
    assert inside(scan, branches[0])
    body = [e for e in ins if "body run" in e["args"]]
    assert len(body) == 4 * f.program.thunks[f.program.thunk[scan["args"]["pc"]]].inner \
        .program.n_instr
    assert all(any(inside(e, s) for s in steps) for e in body)
    taken = [e for e in ins if e["args"].get("call") == 1 and e["args"]["pc"] > 0]
    assert taken and all(inside(e, branches[1]) for e in taken)


def _hand_program(sizes):
    """r1 = a(x) [100 B]; r2 = b(r1) [200 B], frees r1; r3 = c(r2) [50 B], frees r2."""
    thunks = [lambda x, n=n: np.empty(n, np.uint8) for n in sizes]
    return Program(
        n_regs=4, kind=int_array([THUNK] * 3), thunk=int_array([0, 1, 2]),
        in_start=int_array([0, 1, 2]), n_in=int_array([1, 1, 1]),
        out_start=int_array([0, 1, 2]), n_out=int_array([1, 1, 1]),
        free_start=int_array([0, 0, 1]), n_free=int_array([0, 1, 1]),
        target=int_array([-1, -1, -1]), ins=int_array([0, 1, 2]), outs=int_array([1, 2, 3]),
        frees=int_array([1, 2]), thunks=thunks, input_regs=int_array([0]),
        output_regs=int_array([3]))


def test_live_bytes_follow_allocations_and_frees(linker):  # noqa: F811
    from vmc._vm import TRACE_EVENT as C_TRACE_EVENT, VM
    assert C_TRACE_EVENT == TRACE_EVENT
    prog = _hand_program([100, 200, 50])
    vm = ProfilingPyVM(prog) if linker == "py" else VM(prog)
    vm.set_profiling(True)
    vm.set_trace(4)
    vm.run([np.zeros(1)])
    ((run, evs),) = vm.trace
    assert list(evs["pc"]) == [0, 1, 2]
    assert list(evs["nbytes"]) == [100, 200, 50]
    assert list(evs["live"]) == [100, 200, 50]      # r1 freed by b, r2 by c
    assert run["thread"] == threading.get_ident()
    assert run["t_begin"] <= evs["t0"][0] and evs["t1"][-1] <= run["t_end"]


def test_profile_true_prints_every_profile_at_exit():
    code = ("import numpy as np, vmc, vmc.tensor as vt\n"
            "x = vt.dvector('x')\n"
            "f = vmc.function([x], vt.exp(x), name='exit_one')\n"
            "g = vmc.function([x], x * 2, name='exit_two')\n"
            "vmc.function([x], x * 3, name='never_called')\n"
            "f(np.ones(2)); g(np.ones(2))\n")
    run = run_python(code, "profile=True")
    assert run.returncode == 0, run.stderr
    assert "Function profile: exit_one" in run.stderr
    assert "Function profile: exit_two" in run.stderr
    assert "never_called" not in run.stderr
