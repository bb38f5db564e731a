"""The pool threads' tracks of the timeline (issue 21): a split kernel's chunks,
recorded by the pool (vmc.thunks.pool_trace), lie within the instruction that
launched them, cover its work once, and show on one track per pool thread. The
Python linker runs no generated kernels (so no pool): these use the Cython VM."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.config import config
from vmc.thunks import pool_trace
from vmc.thunks.cgen.elemwise import runtime

N = 400_000          # elements: 8 chunks of 50,000 at two threads


@pytest.fixture
def two_threads():
    """Two threads, the pool taking every call a thunk has timed (round trip 1 ns);
    the round trip measured again afterwards."""
    with config.change(threads=2):
        runtime().set_round_trip(1)
        pool_trace.events(clear=True)
        try:
            yield runtime()
        finally:
            runtime().set_round_trip(0)


def kernel(profile=False, **flags):
    x = vt.dvector("x")
    with config.change(**flags):
        return vmc.function([x], vt.tanh(x) * 2.0 + 1.0, profile=profile, name="split")


def _mine(rows):
    return rows[rows["caller"] == np.uint64(threading.get_ident())]


def call_until_a_pool_thread_helps(f, a, tries=40):
    """Call f(a) until a pool thread ran one of its chunks (a worker may wake
    after the caller took every chunk, on a busy machine); the pool's rows."""
    for _ in range(tries):
        np.testing.assert_allclose(f(a), np.tanh(a) * 2.0 + 1.0, rtol=1e-12, atol=1e-12)
        rows = _mine(pool_trace.events())
        if (rows["worker"] > 0).any():
            return rows
    pytest.fail(f"no pool thread took a chunk in {tries} calls")


def test_split_kernel_chunks_lie_in_their_instruction_and_cover_its_work(two_threads):
    f = kernel(profile=True)
    a = np.linspace(-2.0, 2.0, N)
    rows = call_until_a_pool_thread_helps(f, a)
    runs = f.profile.trace
    assert len(rows) and len(runs) <= config.profile_trace_calls
    # each row within the one instruction (the fused kernel) of a traced call
    ins = np.concatenate([evs for _, evs in runs])
    ins = ins[np.argsort(ins["t0"])]
    assert f.program.n_instr == 1
    for r in rows:
        i = np.searchsorted(ins["t0"], r["t0"], side="right") - 1
        assert i >= 0 and ins[i]["t0"] <= r["t0"] <= r["t1"] <= ins[i]["t1"]
    # each job: every task once, chunks back to back over the N elements
    for job in np.unique(rows["job"]):
        mine = np.sort(rows[rows["job"] == job], order="lo")
        assert sorted(mine["task"]) == list(range(mine["ntasks"][0]))
        assert mine["lo"][0] == 0 and mine["hi"][-1] == N
        assert (mine["lo"][1:] == mine["hi"][:-1]).all()
    # the first 3 calls were timed alone, never split
    assert len(np.unique(rows["job"])) == len(runs) - 3
    assert set(np.unique(rows["worker"])) <= {0, 1}


def test_chrome_trace_puts_chunks_on_pool_thread_tracks(two_threads, tmp_path):
    f = kernel(profile=True)
    a = np.linspace(-2.0, 2.0, N)
    rows = call_until_a_pool_thread_helps(f, a)
    path = tmp_path / "trace.json"
    events = json.loads(open(f.profile.to_chrome_trace(str(path))).read())["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    tasks = [e for e in events if e.get("cat") == "pool task"]
    ins = [e for e in events if e.get("cat") == "instruction"]
    assert len(tasks) == len(rows)
    label = f.program.labels[0]
    for e in tasks:
        assert e["name"] == label and e["args"]["pc"] == 0
        k = e["args"]["worker"]
        if k:
            assert names[e["tid"]] == f"vmc pool thread {k}"
        else:      # the launching thread's own chunks nest under its instruction
            assert names[e["tid"]].startswith("Python thread")
        call = [i for i in ins if i["args"]["call"] == e["args"]["call"]]
        assert len(call) == 1
        lo, hi = call[0]["ts"], call[0]["ts"] + call[0]["dur"]
        assert lo - 1e-3 <= e["ts"] and e["ts"] + e["dur"] <= hi + 1e-3   # us, float rounding
    assert "vmc pool thread 1" in names.values()
    items = sum(e["args"]["items"][1] - e["args"]["items"][0] for e in tasks)
    assert items == N * len({e["args"]["job"] for e in tasks})


@pytest.mark.parametrize("flags", [dict(profile=False),
                                   dict(profile=True, profile_trace_calls=0)])
def test_nothing_is_recorded_without_a_trace(two_threads, flags):
    f = kernel(**flags)
    a = np.linspace(-2.0, 2.0, N)
    info = two_threads.pool_info()
    for _ in range(6):
        np.testing.assert_allclose(f(a), np.tanh(a) * 2.0 + 1.0, rtol=1e-12, atol=1e-12)
    after = two_threads.pool_info()
    assert after["jobs"] > info["jobs"]                    # it was split
    assert after["traced_jobs"] == info["traced_jobs"]
    assert len(_mine(pool_trace.events())) == 0


def test_a_traced_function_does_not_make_others_record(two_threads):
    traced, plain = kernel(profile=True), kernel()
    a = np.linspace(-2.0, 2.0, N)
    call_until_a_pool_thread_helps(traced, a)
    pool_trace.events(clear=True)
    jobs = two_threads.pool_info()["jobs"]
    for _ in range(5):
        plain(a)
    assert two_threads.pool_info()["jobs"] > jobs
    assert len(_mine(pool_trace.events())) == 0


def test_a_scan_body_kernel_chunks_are_named_as_the_body_instruction(two_threads, tmp_path):
    x = vt.dvector("x")
    out, _ = vmc.scan(lambda h: vt.tanh(h) * 0.5 + 1.0, outputs_info=[x], n_steps=4)
    f = vmc.function([x], out[-1], profile=True)
    a = np.linspace(-2.0, 2.0, N)
    want = a
    for _ in range(4):
        want = np.tanh(want) * 0.5 + 1.0
    for _ in range(3):        # 4 steps a call: the body's kernel is split from step 4
        np.testing.assert_allclose(f(a), want, rtol=1e-12)
    events = json.loads(open(f.profile.to_chrome_trace(str(tmp_path / "t.json"))).read())
    events = events["traceEvents"]
    tasks = [e for e in events if e.get("cat") == "pool task"]
    body = {e["name"] for e in events if e.get("cat") == "instruction"
            and e["name"].startswith("Fused")}
    assert len(body) == 1 and {e["name"] for e in tasks} == body
    assert len({e["args"]["job"] for e in tasks}) == 4 * 3 - 3
    steps = [e for e in events if e.get("cat") == "scan step"]
    for e in tasks:           # each within one of the scan's steps
        assert any(s["ts"] - 1e-3 <= e["ts"] and e["ts"] + e["dur"] <= s["ts"] + s["dur"] + 1e-3
                   for s in steps)
