"""Runtime errors keep their type and name the op, the input shapes and dtypes,
and the line of user code that made the failing node."""
import sys

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.compile.errors import describe_failure, enrich

from compile_helpers import MODES, linker  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("linker")


@pytest.mark.parametrize("mode", MODES)
def test_elementwise_shape_error(mode):
    x, y = vt.dvector("x"), vt.dvector("y")
    z = vt.exp(x) + y; line = sys._getframe().f_lineno          # noqa: E702
    f = vmc.function([x, y], z, mode=mode)
    with pytest.raises(ValueError) as info:
        f(np.ones(3), np.ones(4))
    msg = str(info.value)
    assert "add" in msg                                            # the op
    assert "(3,) float64" in msg and "(4,) float64" in msg         # shapes and dtypes
    assert f"{__file__}:{line}" in msg                             # the user's line
    assert "'y'" in msg                                            # the input's name


@pytest.mark.parametrize("mode", MODES)
def test_dot_and_reshape_errors(mode):
    m, v = vt.dmatrix("m"), vt.dvector("v")
    d = vt.dot(m, v); line_d = sys._getframe().f_lineno           # noqa: E702
    r = v.reshape((2, 2)); line_r = sys._getframe().f_lineno      # noqa: E702
    f = vmc.function([m, v], d, mode=mode)
    with pytest.raises(ValueError) as info:
        f(np.ones((2, 4)), np.ones(3))
    assert "Dot" in str(info.value) or "Gemv" in str(info.value) or "dot" in str(info.value)
    assert "(2, 4) float64" in str(info.value) and f"{__file__}:{line_d}" in str(info.value)
    g = vmc.function([v], r, mode=mode)
    with pytest.raises(ValueError) as info:
        g(np.ones(5))
    assert "Reshape" in str(info.value) and f"{__file__}:{line_r}" in str(info.value)
    assert "(5,) float64" in str(info.value)


def test_index_error_keeps_its_type():
    x, i = vt.dvector("x"), vt.lscalar("i")
    f = vmc.function([x, i], x[i])
    with pytest.raises(IndexError) as info:
        f(np.ones(3), 7)
    assert "Subtensor" in str(info.value) and __file__ in str(info.value)


def test_error_on_a_shared_variable_input_describes_it():
    w = vmc.shared(np.ones((2, 3)), name="w")
    v = vt.dvector("v")
    f = vmc.function([v], vt.dot(w, v))
    with pytest.raises(ValueError) as info:
        f(np.ones(2))
    assert "'w'" in str(info.value) and "(2, 3) float64" in str(info.value)


def test_function_keeps_working_after_an_error():
    x = vt.dvector("x")
    f = vmc.function([x], x.reshape((2, 2)) * 2)
    with pytest.raises(ValueError):
        f(np.ones(3))
    np.testing.assert_array_equal(f(np.ones(4)), 2 * np.ones((2, 2)))
    assert f.failed_pc == -1


class _Odd(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")


def test_enrich_with_an_exception_that_cannot_be_rebuilt():
    x = vt.dvector("x")
    node = vt.exp(x).owner

    class F:
        failed_pc = 0
        failed_inputs = [((3,), np.dtype("float64"))]
        node_of_pc = {0: node}

    exc = enrich(F(), _Odd(1, 2))
    assert isinstance(exc, _Odd) and "(3,) float64" in "".join(exc.__notes__)
    exc = enrich(F(), KeyError("k"))
    assert isinstance(exc, KeyError) and "exp" in str(exc)
    F.failed_pc = -1
    plain = ValueError("x")
    assert enrich(F(), plain) is plain
    text = describe_failure(node, 3, [np.ones((2, 2)), 5])   # values described too
    assert "(2, 2) float64" in text and "() int" in text
