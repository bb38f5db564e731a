"""DebugMode, NanGuardMode and MonitorMode: each check catches the bug it is for,
names the op, the user's line and the check, and leaves correct functions alone."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.compile import DebugMode, MonitorMode, NanGuardMode
from vmc.compile.debugmode import BadDestroyMap, BadThunkOutput, BadViewMap, InvalidValueError
from vmc.opt import get_mode
from vmc.opt.check import GraphCheckError
from vmc.opt.rewriting import node_rewriter
from vmc.program import THUNK
from vmc.tensor.elemwise import Elemwise
from vmc.thunks.registry import register

from compile_helpers import linker  # noqa: F401  (fixture)

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


class UserOp(vmc.Op):
    """A user op with a correct ``perform`` (its reference) whose "optimized"
    thunk, registered as this op's C-kind thunk, is ``BUGS[self.bug]``."""
    __props__ = ("bug",)

    def __init__(self, bug, view=False):
        self.bug = bug
        if view:
            self.view_map = {0: [0]}

    def make_node(self, x):
        x = vt.as_tensor_variable(x)
        return vmc.Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0] * 2 if self.bug != "view_copy" else inputs[0][...]


def _writes_its_input(a):
    a *= 2                                   # undeclared destroy
    return a.copy()


BUGS = {
    "writes_input": _writes_its_input,
    "aliases_input": lambda a: a[...],        # a view of its input, undeclared
    "wrong_value": lambda a: a * 2 + (a.size > 3),
    "memory_order": lambda a: np.ravel(a, order="K").reshape(a.shape) * 2,   # ignores strides
    "wrong_dtype": lambda a: (a * 2).astype("float32"),
    "view_copy": lambda a: a.copy(),          # declared a view, returns a copy
}


@register(UserOp, kind="c")
def _user_op_thunk(node, destroyable):
    return BUGS[node.op.bug]


def _run(bug, x=None, view=False, mode=None, **kw):
    v = vt.dmatrix("v")
    y = UserOp(bug, view)(v)   # LINE
    f = vmc.function([v], y, mode=mode or DebugMode(**kw))
    return f(np.arange(6.0).reshape(2, 3) if x is None else x)


def _line_of_user_node():
    import inspect
    src = inspect.getsource(_run).splitlines()
    first = _run.__code__.co_firstlineno
    return first + next(i for i, line in enumerate(src) if "# LINE" in line)


@pytest.mark.parametrize("bug, cls, check", [
    ("writes_input", BadDestroyMap, "destroyed-inputs check"),
    ("aliases_input", BadViewMap, "aliasing check"),
    ("wrong_value", BadThunkOutput, "comparison with the reference"),
    ("memory_order", BadThunkOutput, "strides check"),
    ("wrong_dtype", InvalidValueError, "output type check"),
])
def test_each_check_catches_its_bug_and_names_op_line_check_and_values(bug, cls, check):
    with pytest.raises(cls) as info:
        _run(bug)
    text = str(info.value)
    assert check in text and f"UserOp{{{bug}}}" in text
    assert f"test_modes.py:{_line_of_user_node()}" in text
    if bug == "wrong_value":     # both values and the largest difference
        assert "largest difference 1" in text and "got:" in text and "expected:" in text
    if bug == "writes_input":
        assert "before:" in text and "after:" in text


def test_strides_check_names_the_layout():
    with pytest.raises(BadThunkOutput, match="Fortran order|negative strides"):
        _run("memory_order")
    # without the strides check, the same thunk passes on contiguous inputs
    np.testing.assert_array_equal(_run("memory_order", check_strides=False),
                                  np.arange(6.0).reshape(2, 3) * 2)


def test_a_declared_view_that_copies_is_caught():
    with pytest.raises(BadViewMap, match="declared-view check"):
        _run("view_copy", view=True)


def test_a_user_op_that_writes_its_input_without_destroy_map_in_perform_is_caught():
    class Sneaky(vmc.Op):
        def make_node(self, x):
            return vmc.Apply(self, [x], [x.type()])

        def perform(self, node, inputs, output_storage):
            inputs[0] += 1                   # no destroy_map
            output_storage[0][0] = inputs[0].copy()

    x = vt.dvector("x")
    f = vmc.function([x], Sneaky()(x * 1), mode="DebugMode")
    with pytest.raises(BadDestroyMap, match="reference"):
        f(np.zeros(3))


def test_a_nondeterministic_op_runs_once_per_call():
    class Effect(vmc.Op):       # as an MPI collective: running it twice would be a bug
        nondeterministic = True
        calls = 0

        def make_node(self, x):
            return vmc.Apply(self, [x], [x.type()])

        def perform(self, node, inputs, output_storage):
            type(self).calls += 1
            output_storage[0][0] = inputs[0] + 1

    x = vt.dvector("x")
    f = vmc.function([x], Effect()(x * 2), mode="DebugMode")
    np.testing.assert_allclose(f(np.ones(2)), [3.0, 3.0])
    np.testing.assert_allclose(f(np.zeros(2)), [1.0, 1.0])
    assert Effect.calls == 2


def test_isfinite_check_and_its_switch():
    x = vt.dvector("x")
    with pytest.raises(InvalidValueError, match="NaN or infinities"):
        vmc.function([x], vt.log(x), mode="DebugMode")(np.array([1.0, -1.0]))
    f = vmc.function([x], vt.log(x), mode=DebugMode(check_isfinite=False))
    assert np.isnan(f(np.array([1.0, -1.0]))[1])


def test_reductions_in_another_order_are_not_a_bad_output():
    # Found by bench.fuzz (seed 20261202, graphs 310 and 801): a float32 sum of
    # 78,000 terms read in another layout moved by 1.1e-5 relative (the tolerance
    # now grows with sqrt(terms)), and a float64 product returned as a numpy
    # scalar was compared bit for bit.
    rng = np.random.default_rng(2)
    a = vt.fmatrix("a")
    f = vmc.function([a], a.sum(), mode="DebugMode")
    for _ in range(4):
        x = rng.uniform(-2, 2, (300, 260)).astype(np.float32)
        np.testing.assert_allclose(f(x), x.astype(np.float64).sum(), atol=1e-2)
    d = vt.dmatrix("d")
    y = rng.uniform(0.5, 1.5, (3, 4))
    cost = vt.prod(d)
    f = vmc.function([d], [cost, vmc.grad(cost, d)], mode="DebugMode")
    p, g = f(y)
    np.testing.assert_allclose(p, np.prod(y), rtol=1e-12)
    np.testing.assert_allclose(g, np.prod(y) / y, rtol=1e-12)


def test_a_small_difference_in_one_element_is_still_caught():
    # the widened tolerance is per accumulated term: an elementwise op has one
    a = vt.dvector("a")
    f = vmc.function([a], vt.exp(a), mode="DebugMode")
    from vmc.compile.debugmode import _difference
    assert _difference(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-4]), "float64") is not None
    assert _difference(np.float64(2.0), np.float64(2.0 + 1e-14), "float64") is None
    np.testing.assert_allclose(f(np.array([0.0, 1.0])), np.exp([0.0, 1.0]))


@pytest.mark.parametrize("optimizer", ["fast_run", "fast_compile", None])
def test_debugmode_agrees_with_fast_run_on_a_training_step(linker, optimizer):  # noqa: F811
    rng = np.random.default_rng(0)

    def step(mode):
        x, t = vt.dmatrix("x"), vt.lvector("t")
        w = vmc.shared(rng.standard_normal((4, 3)) * 0.1, name="w")
        p = vt.softmax(vt.dot(vt.tanh(x), w))
        loss = -vt.mean(vt.log(p[vt.arange(t.shape[0]), t]))
        f = vmc.function([x, t], loss, updates=[(w, w - 0.5 * vmc.grad(loss, w))], mode=mode)
        return f, w
    args = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    (f, w), (g, u) = step("fast_run"), step(DebugMode(optimizer))
    u.set_value(w.get_value())
    for _ in range(3):
        np.testing.assert_allclose(g(*args), f(*args), rtol=1e-12)
    np.testing.assert_allclose(u.get_value(), w.get_value(), rtol=1e-12)


def test_debugmode_runs_ifelse_scan_and_in_place_updates():
    from vmc.ifelse import ifelse
    c, x = vt.lscalar("c"), vt.dvector("x")
    acc = vmc.shared(np.zeros(3), name="acc")
    ys, _ = vmc.scan(lambda v, h: h * 0.5 + v, sequences=[x.dimshuffle(0, "x") * np.ones(3)],
                     outputs_info=[vt.zeros(3)])
    out = ifelse(c > 0, ys[-1], vt.exp(x[:3]))
    f = vmc.function([c, x], out, updates=[(acc, acc + out)], mode="DebugMode")
    v = np.array([1.0, 2.0, 3.0, 4.0])
    h = np.zeros(3)
    for k in v:
        h = h * 0.5 + k
    np.testing.assert_allclose(f(1, v), h)
    np.testing.assert_allclose(f(0, v), np.exp(v[:3]))
    np.testing.assert_allclose(acc.get_value(), h + np.exp(v[:3]))


_BAD_REWRITE_FIRED = []


@node_rewriter("specialize", "exp", name="test_modes_wrong_type", default=False)
def _wrong_type(fgraph, node):
    # exp(x) -> a node built by hand that claims float64 but whose op makes float32
    (x,) = node.inputs
    if x.type.dtype != "float64" or _BAD_REWRITE_FIRED:
        return None
    _BAD_REWRITE_FIRED.append(1)
    x32 = vt.cast(x, "float32")
    return [vmc.Apply(Elemwise(node.op.scalar_op), [x32], [node.outputs[0].type()]).outputs[0]]


def test_graph_check_catches_a_rewrite_that_breaks_types():
    x = vt.dvector("x")
    _BAD_REWRITE_FIRED.clear()
    with pytest.raises(GraphCheckError, match="specialize.*exp.*float32"):
        vmc.function([x], vt.exp(x), mode=DebugMode().including("test_modes_wrong_type"))


def test_mode_options_are_checked():
    with pytest.raises(TypeError, match="check_finite"):
        DebugMode(check_finite=False)
    with pytest.raises(TypeError, match="nan_is_error"):
        NanGuardMode(nan_is_error="yes")
    with pytest.raises(TypeError, match="pre_func"):
        MonitorMode(pre_func=3)
    with pytest.raises(TypeError, match="post"):
        MonitorMode(post=print)
    with pytest.raises(ValueError, match="linker"):
        DebugMode(linker="c")
    assert isinstance(get_mode("DebugMode"), DebugMode)
    assert isinstance(get_mode("debug_mode"), DebugMode)
    assert isinstance(get_mode("NanGuardMode"), NanGuardMode)
    m = DebugMode(check_strides=False).excluding("fusion")
    assert isinstance(m, DebugMode) and not m.check_strides and "fusion" not in m.passes
    with vmc.config.change(mode="DebugMode"):
        assert isinstance(get_mode(None), DebugMode)


# -- NanGuardMode -----------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["fast_run", None])     # C kernel / numpy thunk
def test_nanguard_names_op_line_output_and_first_bad_index(linker, optimizer):  # noqa: F811
    x = vt.dmatrix("x")
    y = vt.log(x)                                                  # NAN LINE
    f = vmc.function([x], [x * 2, y], mode=NanGuardMode(optimizer=optimizer))
    a = np.ones((3, 4))
    a[1, 2] = a[2, 0] = -1
    with pytest.raises(AssertionError) as info:
        f(a)
    text = str(info.value)
    assert "NaN in output 0 at index (1, 2)" in text and "log" in text
    line = next(i for i, s in enumerate(open(__file__).read().splitlines(), 1)
                if "# NAN LINE" in s and "line =" not in s)
    assert f"test_modes.py:{line}" in text


def test_nanguard_flags_inf_and_big():
    x = vt.dvector("x")
    big = np.array([1.0, 2e10])
    with pytest.raises(AssertionError, match=r"big in output 0 at index \(1,\)"):
        vmc.function([x], x * 1.5, mode=NanGuardMode())(big)
    np.testing.assert_allclose(vmc.function([x], x * 1.5, mode=NanGuardMode(big_is_error=False))(big),
                               big * 1.5)
    with pytest.raises(AssertionError, match=r"inf in output 0 at index \(0,\)"):
        vmc.function([x], 1 / x, mode=NanGuardMode(big_is_error=False))(np.array([0.0, 1.0]))
    f = vmc.function([x], vt.log(x), mode=NanGuardMode(nan_is_error=False, big_is_error=False))
    assert np.isnan(f(np.array([-1.0]))[0])


def test_nanguard_without_its_c_module_checks_c_thunks_too(monkeypatch):
    # _guard not built (or an older build): C thunks are guarded in Python
    import vmc.compile.nanguardmode as ngm
    monkeypatch.setattr(ngm, "guard_cthunk", None)
    x = vt.dvector("x")
    f = vmc.function([x], vt.log(x) * 2, mode=NanGuardMode())
    np.testing.assert_allclose(f(np.array([1.0, np.e])), [0.0, 2.0])
    with pytest.raises(AssertionError, match=r"NaN in output 0 at index \(1,\)"):
        f(np.array([1.0, -1.0]))


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
def test_first_bad_agrees_with_numpy_in_every_layout(dtype):
    from vmc.compile.nanguardmode import BIG, INF, NAN, first_bad
    rng = np.random.default_rng(3)
    for trial in range(40):
        base = rng.standard_normal((4, 5, 6)).astype(dtype)
        for _ in range(rng.integers(0, 3)):
            base.flat[rng.integers(base.size)] = rng.choice([np.nan, np.inf, -np.inf, 3e10])
        for a in (base, base.T, base[::-1, :, ::2], base[:, 1:4], base[2]):
            flags = int(rng.integers(1, 8))
            parts = (a.real, a.imag) if a.dtype.kind == "c" else (a,)
            bad = np.zeros(a.shape, bool)
            for p in parts:
                bad |= (np.isnan(p) & bool(flags & NAN)) | (np.isinf(p) & bool(flags & (INF | BIG)))
                bad |= (np.abs(np.nan_to_num(p)) > 1e10) & np.isfinite(p) & bool(flags & BIG)
            got = first_bad(a, flags)
            if not bad.any():
                assert got is None
            else:
                want = np.unravel_index(np.flatnonzero(bad.reshape(-1))[0], a.shape)
                assert got is not None and got[1] == tuple(int(i) for i in want)


# -- MonitorMode ------------------------------------------------------------------------

def test_monitor_calls_pre_and_post_with_theano_arguments(linker):  # noqa: F811
    from vmc.ifelse import ifelse
    seen = []

    def pre(i, node, fn):
        assert all(o[0] is None for o in fn.outputs)
        seen.append(("pre", i, node, [v[0] for v in fn.inputs]))

    def post(i, node, fn):
        seen.append(("post", i, node, [o[0] for o in fn.outputs]))

    c, x = vt.lscalar("c"), vt.dvector("x")
    f = vmc.function([c, x], ifelse(c > 0, vt.exp(x).sum(), vt.tanh(x).sum()),
                     mode=MonitorMode(pre, post))
    assert np.isclose(f(1, np.ones(3)), 3 * np.e)
    p = f.program
    ran = [pc for pc in range(p.n_instr) if p.kind[pc] == THUNK and "tanh" not in p.labels[pc]]
    assert [s[1] for s in seen if s[0] == "pre"] == ran        # the branch not taken: no calls
    assert [s[1] for s in seen if s[0] == "post"] == ran
    last = seen[-1]
    assert last[2] is f.node_of_pc[last[1]] and np.isclose(float(last[3][-1]), 3 * np.e)


def test_checking_modes_keep_concurrent_updates_atomic():
    counter = vmc.shared(np.zeros(()), name="counter")
    fs = [vmc.function([], counter, updates=[(counter, counter + 1)], mode=m)
          for m in (NanGuardMode(), MonitorMode(post_func=lambda i, n, fn: None))]

    def work(f):
        for _ in range(100):
            f()
    threads = [threading.Thread(target=work, args=(f,)) for f in fs for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert float(counter.get_value()) == 400
