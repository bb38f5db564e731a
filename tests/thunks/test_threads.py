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
    """fn() under each thread count; the results."""
    out = []
    for n in counts:
        with config.change(threads=n):
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
    results = _by_threads(lambda: [np.array(v, copy=True) for v in f(a, b, M)])
    _same_bits(results)
    want = [np.exp(-a * a) * b + np.tanh(b) * 0.5, np.exp(a.astype(np.float64)).sum(), a.max(),
            M.sum(axis=0), M.max(axis=1), M.sum()]
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for got, w in zip(results[0], want):
        np.testing.assert_allclose(got, w, rtol=rtol, atol=rtol)


def test_the_pool_starts_workers_for_a_large_kernel():
    x = vt.dvector("x")
    f = vmc.function([x], vt.tanh(x) * 2.0)
    with config.change(threads=3):
        f(np.ones(1_000_000))
        info = runtime().pool_info()
    assert info["threads"] == 3 and info["workers_started"] >= 2


def test_kernels_of_concurrent_calls_share_the_pool():
    x = vt.dvector("x")
    f = vmc.function([x], vt.sum(vt.exp(x) * 0.5))
    a = np.linspace(-1, 1, 1_000_000)
    with config.change(threads=2):
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
