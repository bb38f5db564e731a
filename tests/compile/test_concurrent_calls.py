"""Compiled functions called from several threads at once (issue 16), and the
shared-variable updates of concurrent calls (issue 20, item 6): each call's updates
commit as one step, in some order, and none is lost."""
import threading

import numpy as np
import pytest

import vmc
import vmc.tensor as vt

from compile_helpers import linker  # noqa: F401  (fixture)


def in_threads(n, work):
    """Run ``work(k)`` in n threads; the exceptions they raised."""
    errors = []

    def run(k):
        try:
            work(k)
        except BaseException as exc:      # noqa: BLE001  (reported by the test)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_counter_updates_from_four_threads_are_all_kept(linker):
    counter = vmc.shared(np.float64(0.0), name="counter")
    f = vmc.function([], [], updates=[(counter, counter + 1)])

    def work(k):
        for _ in range(500):
            f()

    assert in_threads(4, work) == []
    assert counter.get_value() == 2000.0


def _gemm_step(W, n):
    x, y = vt.dmatrix("x"), vt.dmatrix("y")
    return vmc.function([x, y], [], updates=[(W, W - 0.01 * vt.dot(x.T, y))])


def test_four_functions_updating_one_w_in_place_lose_nothing():
    """Four functions whose W update is an in-place gemm (BLAS runs without the
    GIL) end exactly where the same 4 x 100 calls made one after another end."""
    n, k, calls = 300, 40, 100
    rng = np.random.default_rng(0)
    xs = [rng.integers(-2, 3, (k, n)).astype(np.float64) for _ in range(4)]
    ys = [rng.integers(-2, 3, (k, n)).astype(np.float64) for _ in range(4)]
    W = vmc.shared(np.zeros((n, n)), name="W")
    fns = [_gemm_step(W, n) for _ in range(4)]
    assert any("gemm" in label.lower() for label in fns[0].program.labels), \
        fns[0].program.labels        # the update this test is about runs in BLAS

    def work(j):
        for _ in range(calls):
            fns[j](xs[j], ys[j])

    assert in_threads(4, work) == []
    # The same updates one after another. They do not commute bit for bit in
    # general, so compare within rounding, and W[0, 0]'s exact count of steps too.
    want = np.zeros((n, n))
    for j in range(4):
        for _ in range(calls):
            want = want - 0.01 * (xs[j].T @ ys[j])
    np.testing.assert_allclose(W.get_value(), want, rtol=1e-9, atol=1e-9)


def test_an_update_read_before_a_gil_release_is_not_lost(linker):
    """W <- W[::-1] + 1 cannot write in place (the reversed view overlaps), and its
    kernel runs without the GIL: without the lock, two calls read the same old W
    and one increment is lost (about half of them were)."""
    W = vmc.shared(np.zeros((300, 300)), name="W")
    fns = [vmc.function([], [], updates=[(W, W[::-1] + 1)]) for _ in range(4)]

    def work(j):
        for _ in range(100):
            fns[j]()

    assert in_threads(4, work) == []
    np.testing.assert_array_equal(W.get_value(), np.full((300, 300), 400.0))


def test_one_function_from_threads_runs_every_call(linker):
    x = vt.dvector("x")
    f = vmc.function([x], vt.tanh(x) * 2 + x)
    inputs = [np.linspace(-1, 1, 50_000) + k for k in range(4)]
    want = [np.tanh(a) * 2 + a for a in inputs]

    def work(k):
        for _ in range(50):
            np.testing.assert_allclose(f(inputs[k]), want[k], rtol=1e-15, atol=0)

    assert in_threads(4, work) == []


def test_a_call_that_fails_in_one_thread_leaves_the_others_right():
    x, y = vt.dmatrix("x"), vt.dmatrix("y")
    f = vmc.function([x, y], vt.dot(x, y))
    good = np.full((30, 30), 2.0)

    def work(k):
        for i in range(200):
            if k == 0 and i % 2:
                with pytest.raises(ValueError, match="shape|align|dimension"):
                    f(np.ones((3, 4)), np.ones((5, 2)))
            else:
                np.testing.assert_array_equal(f(good, good), np.full((30, 30), 120.0))

    assert in_threads(3, work) == []
