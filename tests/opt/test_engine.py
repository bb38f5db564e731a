"""The rewrite engine: registry, templates, the equilibrium driver, modes, flags."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.graph.fgraph import FunctionGraph
from vmc.opt import Mode, RewriteError, node_rewriter, optimize, register_patterns
from vmc.opt.check import GraphCheckError, check_fgraph
from vmc.opt.driver import Equilibrium
from vmc.opt.patterns import match
from vmc.opt.rewriting import REGISTRY
from vmc.tensor.elemwise import const_value
from vmc.tensor.elemwise import Elemwise

from opt_helpers import compile_fn, op_names

# -- test-only rewrites, off by default -------------------------------------------
CALLS = {"n": 0}

# A rewrite loop must fail the test, not just slow it down.
pytestmark = pytest.mark.filterwarnings("error:vmc.opt:UserWarning")


@node_rewriter("test_count", Elemwise, default=False, tags=("test_count_tag",))
def counting_rewrite(fgraph, node):
    CALLS["n"] += 1
    return None


@node_rewriter("canonicalize", "exp", default=False, tags=("test_failing_tag",))
def failing_rewrite(fgraph, node):
    raise ZeroDivisionError("boom")


register_patterns("canonicalize", [
    ("test_sin_to_cos", ("sin", "x"), lambda x: vt.cos(x)),   # sin(x) -> cos(x) (for tests)
], tags=("test_pattern_tag",), default=False)


# -- patterns -----------------------------------------------------------------------
def test_match_commutative_repeated_names_and_constants():
    x, y = vt.vectors("x", "y")
    b = {}
    assert match(("add", 1, "x"), x + 1, b) and b["x"] is x        # 1 on the right
    b = {}
    assert match(("mul", "x", "x"), x * x, b)
    assert not match(("mul", "x", "x"), x * y, {})
    assert not match(("add", 2, "x"), x + 1, {})
    # a DimShuffle of a constant (what x + 1 builds) counts as the constant
    assert const_value((x + 1).owner.inputs[1]) == 1


def test_pattern_rule_enabled_by_including_its_name():
    x = vt.vector("x")
    f = compile_fn([x], vt.sin(x), mode=Mode().excluding("fusion").including("test_sin_to_cos"))
    assert op_names(f) == ["cos"]
    g = compile_fn([x], vt.sin(x), mode=Mode().excluding("fusion"))
    assert op_names(g) == ["sin"]
    v = np.array([0.3, 1.2])
    np.testing.assert_allclose(f(v), np.cos(v))


# -- modes ------------------------------------------------------------------------------
def test_modes_by_name():
    x = vt.vector("x")
    e = vt.exp(x * 1) + (vt.constant(2.0) + 3.0)
    none = op_names(compile_fn([x], e, mode="None"))
    # x * 1 reads a constant made 1-d (a Python number); the 0-d sum is dimshuffled
    assert sorted(none) == ["DimShuffle", "add", "add", "exp", "mul"]
    fc = op_names(compile_fn([x], e, mode="fast_compile"))
    assert sorted(fc) == ["add", "exp", "mul"]              # folded, not canonicalized
    assert op_names(compile_fn([x], e, mode="fast_run")) == ["FusedElemwise"]
    with vmc.config.change(optimizer=None):
        assert "DimShuffle" in op_names(compile_fn([x], e, mode=None))


def test_mode_including_excluding():
    m = Mode("fast_run")
    assert "fusion" in m.passes
    assert "fusion" not in m.excluding("fusion").passes
    assert Mode("fast_compile").including("canonicalize").passes == [
        "inline", "constant_folding", "canonicalize", "dead_code"]
    with pytest.raises(ValueError, match="no pass, rewrite or tag"):
        Mode().excluding("no_such_rewrite")
    with pytest.raises(ValueError, match="unknown mode"):
        Mode("fastest")
    x = vt.vector("x")
    f = compile_fn([x], vt.log(1 + x), mode=Mode().excluding("fusion", "stability"))
    assert op_names(f) == ["add", "log"]
    f = compile_fn([x], vt.log(1 + x), mode=Mode().excluding("fusion", "log1p"))
    assert op_names(f) == ["add", "log"]
    f = compile_fn([x], vt.log(1 + x), mode=Mode().excluding("fusion"))
    assert op_names(f) == ["log1p"]


# -- the driver -----------------------------------------------------------------------
def test_driver_visits_each_node_a_bounded_number_of_times():
    x = vt.vector("x")
    y = x
    for i in range(2000):
        y = vt.tanh(y) if i % 2 else y * 1.5
    fg = FunctionGraph([x], [y])
    CALLS["n"] = 0
    Equilibrium(REGISTRY.select(["test_count"], include=["test_count_tag"]))(fg)
    assert 2000 <= CALLS["n"] <= 2 * 4000        # elementwise nodes: 2000 (+ dimshuffles)


def test_canonicalize_of_long_chain_settles_and_keeps_numbers():
    x = vt.vector("x")
    y = x
    for i in range(600):
        y = [y * 1.0001, y + 0.5, y - x, vt.tanh(y)][i % 4]
    fg = FunctionGraph([x], [y])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fired = Equilibrium(REGISTRY.select(["constant_folding", "canonicalize"]))(fg)
    # The Python numbers are made 1-d constants: no DimShuffle of a constant to fold
    assert fired["constant_folding"] == 0
    assert sum(fired.values()) < 400
    v = np.linspace(-1, 1, 7)
    f = compile_fn([x], y)
    np.testing.assert_allclose(f(v), compile_fn([x], y, mode="None")(v), rtol=1e-12)


def test_merge_common_subexpressions_and_constants():
    x = vt.vector("x")
    e = vt.exp(x) * vt.exp(x) + vt.exp(x + 1.0) / vt.exp(x + 1.0)
    f = compile_fn([x], vt.stack([vt.sum(e), vt.sum(vt.exp(x))]), mode="fast_compile")
    assert op_names(f).count("exp") == 2
    consts = [v for v in f.fgraph.variables if isinstance(v, vt.TensorConstant)
              and v.data.size == 1 and float(v.data.reshape(())) == 1.0
              and v.type.dtype == "float64"]
    assert len(consts) <= 1


def test_rewrite_error_names_rewrite_and_node():
    x = vt.vector("x")
    mode = Mode().including("test_failing_tag")
    with pytest.raises(RewriteError, match=r"failing_rewrite.*exp.*test_engine.py"):
        compile_fn([x], vt.exp(x), mode=mode)
    with vmc.config.change(on_rewrite_error="warn"):
        with pytest.warns(UserWarning, match="failing_rewrite"):
            f = compile_fn([x], vt.exp(x), mode=mode)
    np.testing.assert_allclose(f(np.array([0.0, 1.0])), np.exp([0.0, 1.0]))


def test_print_rewrites(capsys):
    x = vt.vector("x")
    with vmc.config.change(print_rewrites=True):
        compile_fn([x], vt.log(1 + x))
    out = capsys.readouterr().out
    assert "pass canonicalize" in out and "pass stabilize: " in out
    assert "log1p x1" in out and "Fused" in out


def test_check_graph_and_timings():
    x = vt.vector("x")
    y = vt.sum(vt.exp(x) ** 2) + vt.log(1 + x)
    timings = {}
    with vmc.config.change(check_graph=True):
        fg = FunctionGraph([x], [y])
        optimize(fg, "fast_run", timings)
    assert set(timings) == {f"rewrite:{p}" for p in Mode("fast_run").passes}
    assert all(t >= 0 for t in timings.values())
    # a broken graph is caught
    fg = FunctionGraph([x], [vt.exp(x) + 1])
    node = fg.outputs[0].owner
    fg.clients[node.inputs[0]].clear()
    with pytest.raises(GraphCheckError, match="clients"):
        check_fgraph(fg, after="test")


def test_dead_code_and_constant_folding_of_dimshuffled_constants():
    x = vt.vector("x")
    f = compile_fn([x], x + 1, mode="fast_compile")
    (add,) = f.fgraph.toposort()
    assert isinstance(add.inputs[1], vt.TensorConstant)      # DimShuffle{x}(1.0) folded
    assert len(f.fgraph.apply_nodes) == 1
