"""Tiered compilation of long fused kernels (config.tiered_compile, issue 16): the
first calls run the block form, the segments compile in the background and take
over; both give the same bits, concurrent calls included; the profile says which
tier ran; f.wait_compiled() waits for the switch."""
import io
import sys
import threading
import time

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.config import config
from vmc.thunks.cgen import cache, tiers

N_OPS = 140       # just over elemwise.BLOCK_MIN_OPS: a kernel in block form


def _chain(x, n_ops, tanh):
    y = x
    for i in range(n_ops):
        y = [lambda v: v * x, lambda v: v + 0.1, tanh, lambda v: v - x][i % 4](y)
    return y


def _compile(**kw):
    x = vt.dvector("x")
    return vmc.function([x], _chain(x, N_OPS, vt.tanh), **kw)


def _tiers(f):
    found = [c for c in (tiers.tier_calls(t) for t in f.program.thunks) if c is not None]
    assert len(found) == 1, found        # the one fused kernel
    return found[0]


@pytest.fixture
def fresh_cache(tmp_path):
    """An empty compile cache: tier 2 is not built yet. Background builds end
    before the directory goes."""
    with config.change(compiledir=str(tmp_path), graph_cache=False, tiered_compile=True):
        yield tmp_path
        assert tiers.wait(timeout=120)


def test_first_calls_run_tier_1_then_tier_2_with_the_same_bits(fresh_cache):
    x = np.random.default_rng(0).standard_normal(1003)
    with tiers.held():
        f = _compile()
        first = f(x).copy()
        assert _tiers(f) == (1, 0)
    assert f.wait_compiled(timeout=120)
    second = f(x).copy()
    assert _tiers(f) == (1, 1)
    assert first.tobytes() == second.tobytes()
    np.testing.assert_allclose(second, _chain(x, N_OPS, np.tanh), rtol=1e-12, atol=1e-14)
    g = _compile()                      # tier 2 is in the cache now: used at once
    g(x)
    assert _tiers(g) == (0, 1)


def test_off_builds_the_optimized_form_at_once(fresh_cache):
    with config.change(tiered_compile=False):
        f = _compile()
    assert tiers.pending() == 0
    f(np.ones(10))
    assert _tiers(f) == (0, 1)


def test_concurrent_calls_across_the_switch_agree(fresh_cache):
    # four threads call until tier 2 has run a while: the switch comes amid their calls
    x = np.random.default_rng(1).standard_normal(5000)
    with tiers.held():
        f = _compile()
        want = f(x).tobytes()
    results, errors = [], []
    deadline = time.monotonic() + 120

    def work():
        try:
            while _tiers(f)[1] < 40 and time.monotonic() < deadline:
                results.append(f(x).tobytes())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert set(results) == {want}
    t1, t2 = _tiers(f)
    assert t1 >= 1 and t2 >= 40 and t1 + t2 == 1 + len(results)


def test_the_profile_shows_which_tier_ran(fresh_cache):
    x = np.linspace(-1, 1, 100)
    with tiers.held():
        f = _compile(profile=True)
        f(x)
    f.wait_compiled(timeout=120)
    f(x)
    f(x)
    out = io.StringIO()
    f.profile.summary(file=out)
    text = out.getvalue()
    assert " C12 " in text
    assert "tier 1 1, tier 2 2" in text


def test_a_compiler_still_running_can_be_ended(tmp_path):
    # What the exit hook does after waiting 30 s for a background build: the
    # compiler no longer outlives the process (a huge kernel's gcc ran for minutes).
    slow = [sys.executable, "-c", "import time; time.sleep(60)"]
    failed = []

    def build():
        try:
            cache._build("vmcg_slow", "int x;", tmp_path / "vmcg_slow.so", slow, [])
        except cache.CompileError as exc:
            failed.append(exc)

    thread = threading.Thread(target=build)
    t0 = time.monotonic()
    thread.start()
    while not cache._compilers and time.monotonic() - t0 < 30:
        time.sleep(0.01)
    assert cache.stop_compilers() == 1
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - t0 < 30
    assert len(failed) == 1 and not (tmp_path / "vmcg_slow.so").exists()
    assert cache.stop_compilers() == 0
