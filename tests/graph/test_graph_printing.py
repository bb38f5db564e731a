"""debugprint (ids, shared nodes printed once) and pydotprint's missing-graphviz error."""
import io
import sys

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.graph import Constant, FunctionGraph, SharedVariable
from vmc.printing import debugprint, pydotprint

from graph_dummy_ops import SCALAR, f, g, h, two, var


def test_debugprint_ids_and_shared_nodes_once():
    x = var("x")
    a = f(x)
    out = h(a, g(a, x))
    text = debugprint(out, file="str", print_type=False)
    assert text.splitlines() == [
        "h [id A]",
        " |f [id B]",
        " | |x [id C]",
        " |g [id D]",
        " | |f [id B] (see above)",
        " | |x [id C] (see above)",
    ]


def test_debugprint_types_constants_shared_and_multi_outputs():
    x = var("x")
    k = Constant(SCALAR, 2.5)
    s = SharedVariable(SCALAR, 1.0, name="w")
    p, q = two(x)
    out = f(q, k, s, p)
    text = debugprint(out, file="str")
    lines = text.splitlines()
    assert lines[0] == "f <Scalar(float64, shape=())> [id A]"
    assert lines[1] == " |two.1 <Scalar(float64, shape=())> [id B]"
    assert "2.5 [constant] <Scalar(float64, shape=())> [id D]" in lines[3]
    assert "w [shared] <Scalar(float64, shape=())> [id E]" in lines[4]
    # the other output of the same node refers to the node's id
    assert lines[5] == " |two.0 <Scalar(float64, shape=())> [id B] (see above)"


def test_debugprint_to_files_stdout_and_functions(capsys):
    x = vt.dvector("x")
    y = vt.exp(x).sum()
    buf = io.StringIO()
    assert debugprint(y, file=buf) is None
    assert buf.getvalue().startswith("Sum")
    vmc.dprint([y, x])
    out = capsys.readouterr().out
    assert "exp" in out and "x <Vector(float64, shape=(?))> [id" in out
    fn = vmc.function([x], y)
    text = debugprint(fn, file="str")
    assert "[id A]" in text and "x" in text
    fg = FunctionGraph([x], [y])
    assert str(fg) == debugprint(fg, file="str")


def test_debugprint_depth_and_deep_indentation_is_linear():
    x = var("x")
    y = x
    for _ in range(200):
        y = f(y)
    text = debugprint(y, file="str", print_type=False)
    lines = text.splitlines()
    assert len(lines) == 201
    # deep lines name their depth instead of drawing hundreds of bars
    assert max(len(line) for line in lines) < 80
    assert "(150)" in lines[150]
    shallow = debugprint(y, file="str", print_type=False, depth=2)
    assert len(shallow.splitlines()) == 3


def test_pydotprint_without_graphviz_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "graphviz", None)       # import graphviz fails
    x = var("x")
    with pytest.raises(ImportError, match="pip install graphviz"):
        pydotprint(f(x), outfile=str(tmp_path / "g.svg"))


def test_pydotprint_with_graphviz(tmp_path):
    pytest.importorskip("graphviz")
    import shutil
    if shutil.which("dot") is None:
        pytest.skip("the graphviz 'dot' program is not installed")
    x = vt.dvector("x")
    out = pydotprint(vt.exp(x) + 1, outfile=str(tmp_path / "g.svg"))
    assert open(out).read().lstrip().startswith("<?xml")


def test_vmc_dprint_alias():
    assert vmc.dprint is vmc.debugprint
    x = vt.dscalar("x")
    s = vmc.shared(np.float64(1.0), name="s")
    text = vmc.dprint(x * s, file="str")
    assert "s [shared]" in text
