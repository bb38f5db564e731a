"""The one broadcasting rule (vmc/thunks/broadcast.py): only dims of static
length 1 broadcast, in every thunk that broadcasts; a runtime 1 elsewhere is
an error that names the op and the shapes, never a silent numpy broadcast."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.thunks.broadcast import broadcast_shape, fixed_dims


def test_broadcast_shape_rule():
    assert fixed_dims((1, None, 3)) == (1, 2)
    # a static-1 dim broadcasts, also against an empty dim
    assert broadcast_shape("op", [(1, 4), (0, 4)], [(1,), (0, 1)]) == (0, 4)
    assert broadcast_shape("op", [(4,), (3, 4)], [(0,), (0, 1)]) == (3, 4)
    with pytest.raises(ValueError, match=r"op: input shapes \(1, 4\), \(3, 4\) do not match "
                                         r"\(input 0, dim 0: 1 vs 3"):
        broadcast_shape("op", [(1, 4), (3, 4)], [(0, 1), (0, 1)])
    with pytest.raises(ValueError, match=r"do not fit \(2, 3\)"):
        broadcast_shape("alloc", [(1, 3)], [(0, 1)], (2, 3))
    # leading dims beyond the target must be 1
    assert broadcast_shape("op", [(1, 3)], [(1,)], (3,)) == (3,)


def _compile(inputs, out):
    # numpy thunks (no C kernels) and the C VM's generated kernels both
    return [vmc.function(inputs, out, mode="fast_compile"), vmc.function(inputs, out)]


@pytest.mark.parametrize("case", ["elemwise", "fused", "alloc", "inc_subtensor", "matmul",
                                  "random"])
def test_each_broadcasting_thunk_refuses_a_runtime_one(case):
    x, y = vt.dmatrix("x"), vt.dmatrix("y")
    ok = bad = None
    if case == "elemwise":
        fs, ok, bad = _compile([x, y], x + y), (np.ones((3, 4)), np.ones((3, 4))), \
            (np.ones((3, 4)), np.ones((1, 4)))
    elif case == "fused":
        fs, ok, bad = _compile([x, y], vt.exp(x) * y + 1), (np.ones((3, 4)), np.ones((3, 4))), \
            (np.ones((3, 4)), np.ones((3, 1)))
    elif case == "alloc":
        n = vt.lscalar("n")
        fs = _compile([x, n], vt.alloc(x, n, 4))
        ok, bad = (np.ones((2, 4)), np.array(2)), (np.ones((1, 4)), np.array(2))
    elif case == "inc_subtensor":
        fs = _compile([x, y], vt.inc_subtensor(x[1:], y))
        ok, bad = (np.ones((3, 4)), np.ones((2, 4))), (np.ones((3, 4)), np.ones((1, 4)))
    elif case == "matmul":
        a, b = vt.tensor3("a"), vt.tensor3("b")
        fs = _compile([a, b], vt.matmul(a, b))
        ok, bad = (np.ones((2, 3, 4)), np.ones((2, 4, 5))), \
            (np.ones((1, 3, 4)), np.ones((2, 4, 5)))
    else:
        rs = vt.random.RandomStream(1)
        mu = vt.dvector("mu")
        fs = _compile([mu], rs.normal(mu, 1.0, size=(3,)))
        ok, bad = (np.zeros(3),), (np.zeros(1),)
    for f in fs:
        f(*ok)
        with pytest.raises(ValueError, match="static length 1"):
            f(*bad)
    # a dim of static length 1 does broadcast
    if case == "elemwise":
        r = vt.row("r", dtype="float64")
        g = vmc.function([x, r], x + r, mode="fast_compile")
        np.testing.assert_array_equal(g(np.ones((3, 4)), np.arange(4.0)[None]),
                                      1 + np.arange(4.0)[None].repeat(3, 0))
