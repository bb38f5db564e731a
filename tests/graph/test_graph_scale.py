"""A 100,000-node chain builds, differentiates, clones, prints and compiles:
no walk may recurse (Python's recursion limit is about 1,000)."""
import io
import sys

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.graph import FunctionGraph, ancestors, clone_replace, graph_inputs, toposort
from vmc.printing import debugprint

N = 100_000


def numpy_chain(x):
    """The chain's value and derivative, step by step as the graph does."""
    y, dy = np.float64(x), np.float64(1.0)
    for i in range(N):
        if i % 2:
            dy = dy * np.cos(y)
            y = np.sin(y)
        else:
            y, dy = -y, -dy
    return y, dy


@pytest.fixture(scope="module")
def chain():
    assert sys.getrecursionlimit() < N
    x = vt.dscalar("x")
    y = x
    for i in range(N):
        y = vt.sin(y) if i % 2 else -y
    return x, y


def test_chain_walks_and_function_graph(chain):
    x, y = chain
    order = toposort([y])
    assert len(order) == N and order[0].inputs[0] is x and order[-1] is y.owner
    assert len(ancestors([y])) == N + 1 and graph_inputs([y]) == [x]
    fg = FunctionGraph([x], [y])
    assert len(fg.apply_nodes) == N


def test_chain_clone_and_print(chain):
    x, y = chain
    z = vt.dscalar("z")
    y2 = clone_replace(y, {x: z})
    assert graph_inputs([y2]) == [z] and len(toposort([y2])) == N
    buf = io.StringIO()
    debugprint(y, file=buf)
    text = buf.getvalue()
    assert text.count("\n") == N + 1 and len(text) < 100 * N     # linear, not quadratic


def test_chain_grad_and_compile(chain):
    x, y = chain
    gy = vmc.grad(y, x)
    assert len(toposort([gy])) >= N and x in graph_inputs([gy])
    with vmc.config.change(optimizer=None):      # no rewrites: this is about the walks
        f = vmc.function([x], y)
    assert f.program.n_instr == N
    value, _ = numpy_chain(0.5)
    np.testing.assert_allclose(f(0.5), value, rtol=1e-12)


def _short_chain(n):
    x = vt.dscalar("x")
    y = x
    for i in range(n):
        y = vt.sin(y) if i % 2 else -y
    return x, y


def _numpy_grad(n, x):
    y, dy = np.float64(x), 1.0
    for i in range(n):
        if i % 2:
            dy, y = dy * np.cos(y), np.sin(y)
        else:
            y, dy = -y, -dy
    return dy


def test_long_chain_grad_value():
    # The gradient's value, on a chain short enough to compile quickly.
    x, y = _short_chain(3000)
    with vmc.config.change(optimizer=None):
        f = vmc.function([x], vmc.grad(y, x))
    np.testing.assert_allclose(f(0.5), _numpy_grad(3000, 0.5), rtol=1e-12)


def test_long_chain_grad_compiles_with_every_rewrite():
    # The rewrites walk products thousands of factors deep without recursion
    # (a 1000-step chain's gradient once raised RecursionError in fast_run).
    x, y = _short_chain(1000)
    f = vmc.function([x], vmc.grad(y, x), mode="fast_run")
    np.testing.assert_allclose(f(0.5), _numpy_grad(1000, 0.5), rtol=1e-10)
