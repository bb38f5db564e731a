"""The optimized-graph cache (vmc/compile/graph_cache.py): a hit gives the
program a fresh optimization gives, over the caller's inputs and shared
variables; anything that could change the rewrites' result misses."""
import os
import subprocess
import sys

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.compile import graph_cache
from vmc.opt import Mode, node_rewriter
from vmc.tensor.elemwise import Elemwise


@pytest.fixture
def fresh(tmp_path):
    """An empty cache directory and memory, and the counters from zero."""
    graph_cache.clear_memory()
    before = dict(graph_cache.stats)
    with vmc.config.change(compiledir=str(tmp_path), graph_cache=True):
        yield lambda: {k: graph_cache.stats[k] - before[k] for k in before}
    graph_cache.clear_memory()


def _mlp_step(w_value):
    """A training step with a shared weight, its update and a fused, BLAS graph."""
    x = vt.dmatrix("x")
    w = vmc.shared(w_value, name="w")
    h = vt.tanh(vt.dot(x, w) + 0.5)
    loss = vt.mean(h ** 2)
    return vmc.function([x], loss, updates=[(w, w - 0.1 * vmc.grad(loss, w))]), w


def _numpy_step(x, w):
    h = np.tanh(x @ w + 0.5)
    loss = np.mean(h ** 2)
    dh = 2 * h / h.size * (1 - h ** 2)
    return loss, w - 0.1 * x.T @ dh


def test_hit_gives_the_same_program_and_updates_the_callers_shared_variable(fresh):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3))
    w0 = rng.standard_normal((3, 4))
    f1, w1 = _mlp_step(w0)
    assert fresh() == {"hits": 0, "misses": 1, "uncached": 0}
    f2, w2 = _mlp_step(w0 * 2)
    assert fresh() == {"hits": 1, "misses": 1, "uncached": 0}
    assert str(f1.program) == str(f2.program)
    assert [str(n.op) for n in f1.fgraph.toposort()] == \
        [str(n.op) for n in f2.fgraph.toposort()]
    loss, w_new = _numpy_step(x, w0 * 2)
    np.testing.assert_allclose(f2(x), loss, rtol=1e-12)
    np.testing.assert_allclose(w2.get_value(), w_new, rtol=1e-12)
    np.testing.assert_array_equal(w1.get_value(), w0)        # the first one's is untouched
    loss, w_new = _numpy_step(x, w0)
    np.testing.assert_allclose(f1(x), loss, rtol=1e-12)
    np.testing.assert_allclose(w1.get_value(), w_new, rtol=1e-12)


def _affine(c):
    x = vt.dvector("x")
    return vmc.function([x], vt.exp(x) * c + 1)


def test_a_different_constant_or_dtype_misses(fresh):
    x = np.linspace(-1, 1, 7)
    fs = [_affine(2.0), _affine(3.0), _affine(np.float32(3.0)), _affine(2.0)]
    assert fresh() == {"hits": 1, "misses": 3, "uncached": 0}
    for f, c in zip(fs, (2.0, 3.0, 3.0, 2.0)):
        np.testing.assert_allclose(f(x), np.exp(x) * c + 1, rtol=1e-15)


def test_mode_and_config_are_part_of_the_key(fresh):
    x = vt.dvector("x")
    y = vt.log(1 + vt.exp(x))
    f_run = vmc.function([x], y)
    f_nostab = vmc.function([x], y, mode=Mode("fast_run").excluding("stabilize"))
    with vmc.config.change(floatX="float32"):
        vmc.function([x], y)
    assert fresh() == {"hits": 0, "misses": 3, "uncached": 0}
    big = np.array([800.0])
    assert f_run(big)[0] == 800.0            # softplus
    with np.errstate(over="ignore"):
        assert np.isinf(f_nostab(big)[0])    # log(1 + exp(800)) as written


def test_the_line_that_built_a_node_is_part_of_the_key(fresh):
    x = vt.dvector("x")
    a = vt.sqrt(x)  # noqa: E702 - two structurally equal graphs from two lines
    b = vt.sqrt(x)
    fa, fb = vmc.function([x], a), vmc.function([x], b)
    assert fresh() == {"hits": 0, "misses": 2, "uncached": 0}
    lines = [f.fgraph.toposort()[0].trace[1] for f in (fa, fb)]
    assert lines[1] == lines[0] + 1


def test_damaged_entry_is_rebuilt(fresh, tmp_path):
    _affine(2.0)
    (entry,) = tmp_path.glob("vmcg_graph_*.pkl")
    entry.write_bytes(b"not a pickle")
    graph_cache.clear_memory()
    f = _affine(2.0)
    assert fresh() == {"hits": 0, "misses": 2, "uncached": 0}
    np.testing.assert_allclose(f(np.ones(2)), np.e * 2 + 1)
    assert entry.read_bytes() != b"not a pickle"


def test_off_switch_nested_graphs_and_unoptimized_modes_are_not_cached(fresh):
    x = vt.dvector("x")
    with vmc.config.change(graph_cache=False):
        vmc.function([x], x * 2)
    vmc.function([x], x * 2, mode="None")
    s = vmc.scan(lambda xt, acc: acc + xt, sequences=[x], outputs_info=[vt.constant(0.0)])
    ys = s[0] if isinstance(s, tuple) else s
    f = vmc.function([x], ys[-1])
    # the outer graph holds the loop body: not cached; the body on its own is
    assert fresh() == {"hits": 0, "misses": 1, "uncached": 3}
    assert f(np.arange(4.0)) == 6.0


@node_rewriter("canonicalize", "exp", default=False, tags=("test_graph_cache_tag",))
def _exp_to_zero(fgraph, node):
    return [vt.zeros_like(node.inputs[0])]


def test_a_rewrite_from_outside_vmc_turns_the_cache_off_where_it_is_on(fresh):
    x = vt.dvector("x")
    f_off = vmc.function([x], vt.exp(x))                 # the foreign rewrite is off
    f_on = vmc.function([x], vt.exp(x), mode=Mode("fast_run").including("test_graph_cache_tag"))
    assert fresh() == {"hits": 0, "misses": 1, "uncached": 1}
    np.testing.assert_allclose(f_off(np.zeros(2)), 1.0)
    np.testing.assert_allclose(f_on(np.zeros(2)), 0.0)
    assert not any(isinstance(n.op, Elemwise) and n.op.scalar_op.name == "exp"
                   for n in f_on.fgraph.toposort())


_CHILD = """
import numpy as np, vmc, vmc.tensor as vt
from vmc.compile import graph_cache
x = vt.dvector("x")
y = x
for i in range(40):
    y = vt.tanh(y * x + 0.1) if i % 2 else y - x
f = vmc.function([x], y)
print(graph_cache.stats["hits"], repr(f(np.linspace(-1, 1, 5)).tolist()))
"""


def test_a_second_process_reuses_the_optimized_graph(tmp_path):
    env = dict(os.environ, VMC_COMPILEDIR=str(tmp_path),
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(
                   os.path.abspath(__file__)))) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = [subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                           text=True, timeout=120) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    (hits0, out0), (hits1, out1) = (r.stdout.split(" ", 1) for r in runs)
    assert (hits0, hits1) == ("0", "1")
    xv = np.linspace(-1, 1, 5)
    y = xv
    for i in range(40):
        y = np.tanh(y * xv + 0.1) if i % 2 else y - xv
    np.testing.assert_allclose(eval(out1), y, rtol=1e-14)
    assert out0 == out1


def test_large_constants_are_not_cached(fresh):
    x = vt.dvector("x")
    big = np.arange(float(graph_cache.MAX_CONSTANT_BYTES // 8 + 1))
    f = vmc.function([x], x[:3] + vt.constant(big)[:3])
    assert fresh() == {"hits": 0, "misses": 0, "uncached": 1}
    np.testing.assert_array_equal(f(np.ones(3)), [1.0, 2.0, 3.0])


def test_memory_level_keeps_the_newest_within_its_budget(fresh, monkeypatch):
    monkeypatch.setattr(graph_cache, "MEMORY_BYTES", 1)       # room for one graph
    _affine(2.0)
    _affine(3.0)
    assert len(graph_cache._memory) == 1
    _affine(3.0)                                              # from memory
    _affine(2.0)                                              # from the directory
    assert fresh() == {"hits": 2, "misses": 2, "uncached": 0}
