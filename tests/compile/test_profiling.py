"""Profiles: the numbers add up, the tables print (the timeline: test_timeline.py)."""
import io

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.compile.profiling import ProfileStats, peak_memory
from vmc.program import JUMP_IF_FALSE, MOVE, THUNK, Program, int_array
from vmc.ifelse import ifelse

from compile_helpers import MODES, linker, run_python  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("linker")


def mlp_step(mode, profile=True):
    rng = np.random.default_rng(0)
    xs, ts = vt.dmatrix("X"), vt.lvector("t")
    W = vmc.shared(rng.standard_normal((4, 3)) * 0.1, name="W")
    b = vmc.shared(np.zeros(3), name="b")
    p = vt.softmax(vt.dot(vt.tanh(xs), W) + b)
    loss = -vt.log(p[vt.arange(ts.shape[0]), ts]).mean()
    gW, gb = vmc.grad(loss, [W, b])
    with vmc.config.change(optimizer=None if mode == "None" else mode):
        f = vmc.function([xs, ts], loss, updates=[(W, W - 0.1 * gW), (b, b - 0.1 * gb)],
                         profile=profile, name="mlp_step")
    args = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    return f, args


@pytest.mark.parametrize("mode", MODES)
def test_counts_equal_calls_and_sums_equal_totals(mode):
    f, args = mlp_step(mode)
    assert isinstance(f.profile, ProfileStats)
    for _ in range(7):
        f(*args)
    prof = f.profile
    assert prof.calls == 7 and prof.n_calls == 7
    # a straight-line program: every instruction ran once per call
    assert list(np.asarray(f.counts)) == [7] * f.program.n_instr
    rows = prof.rows()
    assert len(rows) == f.program.n_instr
    total = int(np.sum(f.times))
    assert total == prof.thunk_ns == sum(r.time_ns for r in rows) > 0
    for key in ("op_class", "label"):
        agg = prof.by_key(key)
        assert sum(t for t, _ in agg.values()) == total
        assert sum(c for _, c in agg.values()) == 7 * f.program.n_instr
    # the whole calls include the VM runs, which include the instructions
    assert prof.call_ns >= prof.vm_ns >= prof.thunk_ns


def test_counts_follow_the_branch_taken():
    c, x = vt.lscalar("c"), vt.dvector("x")
    with vmc.config.change(optimizer=None):
        f = vmc.function([c, x], ifelse(c > 0, vt.tanh(x), vt.exp(x)), profile=True)
    for cond in (1, 0, 0, 1, 1):
        f(cond, np.ones(3))
    p = f.program
    counts = dict(zip(p.labels, np.asarray(f.counts)))
    assert counts["tanh"] == 3 and counts["exp"] == 2 and counts["ifelse"] == 5
    assert f.profile.calls == 5
    assert sum(r.calls for r in f.profile.rows()) == int(np.sum(f.counts))
    executed = [pc for pc in range(p.n_instr) if f.counts[pc] > 0]
    assert [r.pc for r in f.profile.rows()] == executed


@pytest.mark.parametrize("mode", MODES)
def test_summary_prints_every_section(mode):
    f, args = mlp_step(mode)
    f(*args)
    f(*args)
    out = io.StringIO()
    f.profile.summary(file=out)
    text = out.getvalue()
    for piece in ("Function profile: mlp_step", "calls: 2", "total time:",
                  "time inside the VM:", "overhead outside the VM:", "compile:",
                  "per op class:", "per op:", "per thunk:", "cum %", "per call",
                  "peak memory", "with frees", "without"):
        assert piece in text, piece
    for step in f.profile.compile_timings:
        assert step in text
    assert " Py " in text or " C " in text
    assert "(5, 4) float64" in text or "(5, 3) float64" in text     # output shapes


def test_summary_to_stdout_and_config_profile(capsys):
    x = vt.dvector("x")
    with vmc.config.change(profile=True):
        f = vmc.function([x], vt.exp(x) * 2, name="cfg")
    assert f.profile is not None
    f(np.ones(3))
    f.profile.summary()
    assert "Function profile: cfg" in capsys.readouterr().out
    g = vmc.function([x], x * 2)
    assert g.profile is None
    g(np.ones(3))
    assert int(np.sum(g.counts)) == 0            # not profiled: nothing recorded


def test_reset_and_record_call():
    x = vt.dvector("x")
    f = vmc.function([x], vt.exp(x) + 1, profile=True)
    f(np.ones(2))
    f.profile.reset()
    assert f.profile.calls == 0 and f.profile.thunk_ns == 0 and f.profile.call_ns == 0
    f.profile.record_call(1500)
    assert f.profile.n_calls == 1 and f.profile.call_ns == 1500


def test_peak_memory_with_and_without_frees():
    # r1 = a(x) [100 B]; r2 = b(r1) [200 B], frees r1; r3 = c(r2) [50 B], frees r2;
    # a jump whose frees are those of a skipped block is walked through; a
    # move hands its buffer on.
    rows = [  # kind, ins, outs, frees
        (THUNK, [0], [1], []),
        (THUNK, [1], [2], [1]),
        (JUMP_IF_FALSE, [0], [], [2]),
        (THUNK, [2], [3], [2]),
        (MOVE, [3], [4], [3]),
    ]
    ins, outs, frees, starts = [], [], [], {"i": [], "o": [], "f": []}
    for _, i, o, fr in rows:
        starts["i"].append(len(ins))
        starts["o"].append(len(outs))
        starts["f"].append(len(frees))
        ins += i
        outs += o
        frees += fr
    prog = Program(
        n_regs=5, kind=int_array([r[0] for r in rows]), thunk=int_array([0, 1, -1, 2, -1]),
        in_start=int_array(starts["i"]), n_in=int_array([len(r[1]) for r in rows]),
        out_start=int_array(starts["o"]), n_out=int_array([len(r[2]) for r in rows]),
        free_start=int_array(starts["f"]), n_free=int_array([len(r[3]) for r in rows]),
        target=int_array([-1, -1, 4, -1, -1]), ins=int_array(ins), outs=int_array(outs),
        frees=int_array(frees), thunks=[None] * 3, input_regs=int_array([0]),
        output_regs=int_array([4]))
    with_frees, without = peak_memory(prog, {0: [100], 1: [200], 3: [50]})
    assert without == 350
    assert with_frees == 300      # r1 and r2 live together; r2 freed before r3 is kept


def test_memory_figures_of_a_real_function():
    x = vt.dvector("x")
    y = vt.exp(x)
    z = y * 2 + vt.tanh(y)
    with vmc.config.change(optimizer=None):
        f = vmc.function([x], [z, y.sum()], profile=True)
    f(np.ones(1000))
    with_frees, without = f.profile.memory()
    assert 8000 <= with_frees <= without
    assert without <= 8000 * 6 + 64


def test_profile_at_exit_prints_every_profiled_function():
    code = ("import numpy as np, vmc, vmc.tensor as vt\n"
            "x = vt.dvector('x')\n"
            "f = vmc.function([x], vt.exp(x), profile=True, name='at_exit_one')\n"
            "g = vmc.function([x], x * 2, profile=True, name='at_exit_two')\n"
            "f(np.ones(2)); g(np.ones(2))\n")
    run = run_python(code, "profile_at_exit=True")
    assert run.returncode == 0, run.stderr
    assert "Function profile: at_exit_one" in run.stderr
    assert "Function profile: at_exit_two" in run.stderr
    quiet = run_python(code, "")
    assert "Function profile" not in quiet.stderr
