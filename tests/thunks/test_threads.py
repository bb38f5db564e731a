"""config.threads: the elementwise runtime's pool splits large kernels and full
reductions; results are the same bits for any thread count (issue 16)."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.config import config
from vmc.thunks.cgen.elemwise import runtime


def _by_threads(fn, counts=(1, 2, 3, 5)):
    """fn() under each thread count, the pool taking every call it may (its round trip
    set to 1 ns: any call a thunk has timed is worth splitting); the results."""
    out = []
    for n in counts:
        with config.change(threads=n):
            runtime().set_round_trip(1)
            out.append(fn())
    return out


def _same_bits(results):
    first = results[0]
    for r in results[1:]:
        for a, b in zip(first, r):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernels_and_reductions_give_the_same_bits_for_any_thread_count(dtype):
    x, y = vt.vector("x", dtype=dtype), vt.vector("y", dtype=dtype)
    m = vt.matrix("m", dtype=dtype)
    f = vmc.function([x, y, m], [vt.exp(-x * x) * y + vt.tanh(y) * 0.5,   # elementwise
                                 vt.sum(vt.exp(x)),                        # full reduction
                                 vt.max(x),
                                 m.sum(axis=0), m.max(axis=1),             # either axis
                                 m.T.sum()])                               # strided, full
    rng = np.random.default_rng(1)
    a = rng.standard_normal(300_001).astype(dtype)
    b = rng.standard_normal(300_001).astype(dtype)
    M = rng.standard_normal((700, 513)).astype(dtype)
    jobs = runtime().pool_info()["jobs"]
    # each count: three calls timed alone, then one split
    calls = _by_threads(lambda: [[np.array(v, copy=True) for v in f(a, b, M)]
                                 for _ in range(4)])
    assert runtime().pool_info()["jobs"] > jobs
    results = [out for per_count in calls for out in per_count]
    _same_bits(results)
    want = [np.exp(-a * a) * b + np.tanh(b) * 0.5, np.exp(a.astype(np.float64)).sum(), a.max(),
            M.sum(axis=0), M.max(axis=1), M.sum()]
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for got, w in zip(results[0], want):
        np.testing.assert_allclose(got, w, rtol=rtol, atol=rtol)


def _thunk_cost(f):
    rt = runtime()
    costs = [rt.thunk_cost(t.fn, t.ctx) for t in f.program.thunks if hasattr(t, "ctx")]
    costs = [c for c in costs if c is not None]
    assert len(costs) == 1
    return costs[0]


def test_a_kernel_learns_its_cost_then_splits_work_worth_the_round_trip():
    x = vt.dvector("x")
    f = vmc.function([x], vt.tanh(x) * 2.0)
    rt = runtime()
    a = np.ones(200_000)
    with config.change(threads=3):
        rt.set_round_trip(1)                  # every call worth it, once the cost is known
        jobs = rt.pool_info()["jobs"]
        for k in range(3):                    # timed alone: never split
            f(a)
            assert rt.pool_info()["jobs"] == jobs and _thunk_cost(f)[1] == k + 1
        assert _thunk_cost(f)[0] > 0          # picoseconds per element
        f(a)
        info = rt.pool_info()
        assert info["jobs"] == jobs + 1 and info["workers_started"] >= 2
        f(np.ones(info["floor"] - 1))         # below the floor: alone, not timed
        assert rt.pool_info()["jobs"] == jobs + 1 and _thunk_cost(f)[1] == 3
        rt.set_round_trip(10 ** 15)           # a round trip longer than any call: alone
        f(a)
        assert rt.pool_info()["jobs"] == jobs + 1
    assert rt.pool_info()["round_trip_ns"] == 0   # a new thread count: measured again


def test_the_round_trip_is_measured_on_first_use():
    x = vt.dvector("x")
    f = vmc.function([x], vt.exp(x) * 0.5)
    rt = runtime()
    with config.change(threads=2):
        assert rt.pool_info()["round_trip_ns"] == 0
        for _ in range(4):                    # three timed calls, then the decision
            f(np.ones(100_000))
        assert rt.pool_info()["round_trip_ns"] > 0


def test_kernels_of_concurrent_calls_share_the_pool():
    x = vt.dvector("x")
    f = vmc.function([x], vt.sum(vt.exp(x) * 0.5))
    a = np.linspace(-1, 1, 1_000_000)
    with config.change(threads=2):
        runtime().set_round_trip(1)
        want = f(a)
        errors = []

        def work():
            try:
                for _ in range(10):
                    assert f(a) == want       # same chunks whichever thread ran them
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    np.testing.assert_allclose(want, np.exp(a).sum() * 0.5, rtol=1e-12)


@pytest.mark.parametrize("bad", [0, -1, "0", "-4"])
def test_threads_must_be_positive(bad):
    with pytest.raises(ValueError, match="threads must be a positive number"):
        config.threads = bad


def test_threads_zero_in_vmc_flags_is_an_error_at_import():
    env = dict(os.environ, VMC_FLAGS="threads=0")
    proc = subprocess.run([sys.executable, "-c", "import vmc"], env=env, capture_output=True,
                          text=True, cwd=os.path.dirname(os.path.dirname(vmc.__file__)))
    assert proc.returncode != 0
    assert "threads must be a positive number of threads, got '0'" in proc.stderr


def test_the_default_is_the_cpus_this_process_may_use():
    from vmc.config import OPTIONS
    assert OPTIONS["threads"].default == len(os.sched_getaffinity(0))


def test_blas_threads_follow_config():
    import threadpoolctl
    with config.change(threads=1):
        counts = {i["num_threads"] for i in threadpoolctl.threadpool_info()
                  if i["user_api"] == "blas"}
        assert counts == {1}
