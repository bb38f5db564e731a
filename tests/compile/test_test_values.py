"""config.compute_test_value: shape and dtype errors where the user builds the node.

Oracles: numpy on the same test values, and the line numbers of this file."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.graph.basic import get_test_value
from vmc.ifelse import ifelse


@pytest.fixture(params=["raise", "warn"])
def test_values(request):
    with vmc.config.change(compute_test_value=request.param):
        yield request.param


def _line(marker):
    return next(i for i, s in enumerate(open(__file__).read().splitlines(), 1)
                if marker in s and "_line(" not in s)


def test_values_follow_the_graph_as_it_is_built(test_values):
    x, w = vt.dmatrix("x"), vt.dmatrix("w")
    x.tag.test_value = np.arange(6.0).reshape(2, 3)
    w.tag.test_value = [[1.0], [2.0], [3.0]]              # converted by w's type
    b = vmc.shared(np.array([0.5]), name="b")
    h = vt.tanh(vt.dot(x, w) + b).sum(axis=1) * 2
    xv, wv = x.tag.test_value, np.array(w.tag.test_value)
    np.testing.assert_allclose(h.tag.test_value, np.tanh(xv @ wv + 0.5).sum(axis=1) * 2)
    g = vmc.grad(h.sum(), w)
    np.testing.assert_allclose(g.tag.test_value, xv.T @ (2 * (1 - np.tanh(xv @ wv + 0.5) ** 2)))
    c = vt.lscalar("c")
    c.tag.test_value = 0
    np.testing.assert_allclose(ifelse(c > 0, h, -h).tag.test_value, -h.tag.test_value)


def test_a_shape_error_is_raised_where_the_node_is_built(test_values):
    x, w = vt.dmatrix("x"), vt.dmatrix("w")
    x.tag.test_value = np.ones((2, 3))
    w.tag.test_value = np.ones((4, 5))
    with pytest.raises(ValueError) as info:
        vt.dot(x, w)                                      # BAD DOT
    text = str(info.value)
    assert "Dot" in text and "(2, 3) float64, (4, 5) float64" in text
    assert f"test_test_values.py:{_line('# BAD DOT')}" in text
    v = vt.dvector("v")
    v.tag.test_value = np.ones(4)
    with pytest.raises(ValueError, match="test value"):
        x + v                                             # broadcasting (2, 3) with (4,)


def test_a_bad_test_value_names_its_variable():
    with vmc.config.change(compute_test_value="raise"):
        x = vt.dmatrix("x")
        x.tag.test_value = np.ones(3)
        with pytest.raises(TypeError, match="test value of x"):
            vt.exp(x)


def test_missing_test_values_raise_warn_or_are_ignored():
    x, y = vt.dvector("x"), vt.dvector("y")
    x.tag.test_value = np.ones(3)
    with vmc.config.change(compute_test_value="raise"):
        with pytest.raises(ValueError, match=r"input 1 \(y\) has no test value"):
            x + y                                         # MISSING
    with vmc.config.change(compute_test_value="warn"):
        with pytest.warns(UserWarning, match="y") as record:
            z = x + y
        assert record[0].filename == __file__
        assert not hasattr(z.tag, "test_value")
    with vmc.config.change(compute_test_value="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not hasattr((x + y).tag, "test_value")
    with vmc.config.change(compute_test_value="off"):
        assert not hasattr(vt.exp(x).tag, "test_value")


def test_scan_steps_and_gradients_get_test_values(test_values):
    x = vt.dmatrix("x")
    x.tag.test_value = np.arange(12.0).reshape(4, 3)
    seen = []

    def step(row, acc):
        seen.append(get_test_value(row).shape)
        return acc * 0.5 + vt.sin(row)
    ys, _ = vmc.scan(step, sequences=[x], outputs_info=[vt.zeros(3)])
    acc, want = np.zeros(3), []
    for row in x.tag.test_value:
        acc = acc * 0.5 + np.sin(row)
        want.append(acc)
    assert seen == [(3,)]
    np.testing.assert_allclose(ys.tag.test_value, want)
    g = vmc.grad(ys[-1].sum(), x)
    w = 0.5 ** np.arange(3, -1, -1)[:, None] * np.cos(x.tag.test_value)
    np.testing.assert_allclose(g.tag.test_value, w)


def test_an_error_inside_a_scan_step_names_the_step_line():
    with vmc.config.change(compute_test_value="raise"):
        x = vt.dmatrix("x")
        x.tag.test_value = np.ones((4, 3))

        def step(row):
            return vt.dot(row, vt.ones((2, 2)))           # STEP DOT
        with pytest.raises(ValueError) as info:
            vmc.scan(step, sequences=[x])
    assert f"test_test_values.py:{_line('# STEP DOT')}" in str(info.value)


def test_compiling_computes_no_test_values_and_runs_as_usual():
    with vmc.config.change(compute_test_value="raise"):
        x = vt.dmatrix("x")
        x.tag.test_value = np.ones((2, 2))
        y = vt.log(vt.exp(x) + 1) * 2
        f = vmc.function([x], [y, vmc.grad(y.sum(), x)])
        g = vmc.function([x], y, mode="DebugMode")
    a = np.array([[0.0, 1.0], [2.0, -3.0]])
    np.testing.assert_allclose(f(a)[0], np.log1p(np.exp(a)) * 2)
    np.testing.assert_allclose(g(a), np.log1p(np.exp(a)) * 2)
