"""Items 7 and 8 of issue 20: compile cost that grew exponentially or
quadratically with the graph.

7. A chain of D ifelses, each reading the previous value in both branches,
   gave about 7 * 2**D instructions; its gradient made the rewrites stop
   unsettled ("did not settle after 11201 steps", D=10).
8. The rewriting of an N-step chain's gradient was quadratic in N.

No timing is asserted: program sizes, warnings, and the number of Python
function calls the rewriting makes (deterministic) at two sizes.
"""
import sys
import warnings

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.graph.fgraph import FunctionGraph
from vmc.ifelse import ifelse
from vmc.opt import optimize


def ifelse_chain(c, x, depth):
    e = x
    for i in range(depth):
        e = ifelse(c > i, e * 1.001, e - 1.0)
    return e


def chain_value(c, x, depth):
    for i in range(depth):
        x = x * 1.001 if c > i else x - 1.0
    return x


@pytest.mark.parametrize("linker", ["cvm", "py"])
def test_ifelse_chain_program_is_linear_in_depth(linker):
    c, x = vt.dscalar("c"), vt.dscalar("x")
    depth = 16
    f = vmc.function([c, x], ifelse_chain(c, x, depth), mode=vmc.Mode("fast_run", linker=linker))
    assert f.program.n_instr <= 10 * depth
    for cv in (-1.0, 0.5, 7.5, depth + 1.0):
        np.testing.assert_allclose(f(cv, 2.0), chain_value(cv, 2.0, depth), rtol=1e-12)


def test_ifelse_chain_gradient_settles():
    c, x = vt.dscalar("c"), vt.dvector("x")
    depth = 10
    e = ifelse_chain(c, x, depth)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = vmc.function([c, x], [e, vmc.grad(e.sum(), x)])
    assert f.program.n_instr <= 40 * depth
    for cv in (0.5, 3.5, 20.0):
        v, g = f(cv, np.ones(3))
        n_then = sum(cv > i for i in range(depth))
        np.testing.assert_allclose(v, chain_value(cv, np.ones(3), depth), rtol=1e-12)
        np.testing.assert_allclose(g, np.full(3, 1.001 ** n_then), rtol=1e-12)


def test_deeply_nested_ifelse_compiles_and_stays_lazy():
    """Each value only in the then-branch of the next: nesting depth 400."""
    c, x = vt.lscalar("c"), vt.dvector("x")
    e = x[:1]
    for i in range(400):
        e = ifelse(c > i, e + 1.0, x[:1] + x[2] * 0.0)     # x[2] fails on a short x
    f = vmc.function([c, x], e)
    np.testing.assert_allclose(f(1000, np.zeros(1)), [400.0])  # no else branch ran
    np.testing.assert_allclose(f(0, np.zeros(3)), [0.0])
    np.testing.assert_allclose(f(400, np.zeros(3)), [400.0])


def rewrite_calls(build, size):
    """Python-level calls (``sys.setprofile`` events) made by the fast_run
    rewrites of the graph ``build(size)`` returns: a count, not a time."""
    inputs, outputs = build(size)
    fg = FunctionGraph(inputs, outputs)
    fg.n_user_outputs, fg.update_shared = len(outputs), []
    count = [0]

    def prof(frame, event, arg):
        if event in ("call", "c_call"):
            count[0] += 1
    sys.setprofile(prof)
    try:
        optimize(fg, "fast_run")
    finally:
        sys.setprofile(None)
    return count[0]


def gradient_chain(n):
    x = vt.dvector("x")
    e = x
    for _ in range(n):
        e = vt.tanh(e) * 1.0001
    return [x], [e, vmc.grad(e.sum(), x)]


def ifelse_chain_graph(n):
    c, x = vt.dscalar("c"), vt.dvector("x")
    e = ifelse_chain(c, x, n)
    return [c, x], [e, vmc.grad(e.sum(), x)]


@pytest.mark.parametrize("build, size", [(gradient_chain, 250), (ifelse_chain_graph, 60)],
                         ids=["gradient_chain", "ifelse_chain_gradient"])
def test_rewriting_is_about_linear(build, size):
    small, large = rewrite_calls(build, size), rewrite_calls(build, 2 * size)
    assert large < 2.4 * small, (small, large)
