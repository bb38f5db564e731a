"""The differential fuzzer itself (bench/fuzz): its graphs are valid and agree
across modes, an injected bug is found and shrunk to the step that has it.
The 10,000-graph runs are outside the test suite (``python -m bench.fuzz``)."""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fuzz.check import check  # noqa: E402
from bench.fuzz.graphs import INPUTS, Program, Step, draw  # noqa: E402
from bench.fuzz.shrink import shrink  # noqa: E402


def test_drawn_graphs_are_valid_and_agree():
    progs = [draw(np.random.default_rng([11, i])) for i in range(6)]
    for p in progs:
        assert p.steps and len(p.shapes) == len(INPUTS) + len(p.steps)
        found, invalid = check([p], seed=11)
        assert (found, invalid) == ([], []), p.describe()


def test_an_injected_bug_is_found_and_shrunk(monkeypatch):
    from vmc.tensor.math import Dot
    from vmc.thunks.registry import DEVICES

    def wrong_dot(node, destroyable):        # off by 1e-3 where the result is not tiny
        return lambda a, b: np.dot(a, b) + (1e-3 if np.size(np.dot(a, b)) > 3 else 0)
    monkeypatch.setitem(DEVICES["cpu"].c, Dot, wrong_dot)
    n = len(INPUTS)
    a, w = list(INPUTS).index("a"), list(INPUTS).index("w")
    shapes = [(3, 4), (3, 4), (1, 4), (3, 1), (4,), (), (4, 3), (), (3, 4)]
    dtypes = ["float64"] * 7 + ["int64", "float64"]
    prog = Program("float64", (3, 4, 3), [Step("unary", (a,), ("tanh",)),
                                          Step("dot", (n, w)), Step("unary", (n + 1,), ("sin",)),
                                          Step("reduce", (n + 2,), ("sum", 0, False))],
                   outputs=[n + 3, n], shapes=shapes + [(3, 4), (3, 3), (3, 3), (3,)],
                   dtypes=dtypes + ["float64"] * 4)
    found, _ = check([prog], seed=1)
    assert len(found) == 1
    _, key, why = found[0]
    assert "BadThunkOutput" in key or "differs" in key
    small, tries = shrink(prog, 1, key)
    assert [s.kind for s in small.steps] == ["dot"] and 0 < tries < 50
