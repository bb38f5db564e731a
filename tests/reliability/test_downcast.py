"""Item 14 of issue 20: ``allow_input_downcast=True`` may lose precision but
never wraps: a value that does not fit the input's dtype is an error naming
the argument. A Python int beyond int64 given for a float input is converted."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt


@pytest.mark.parametrize("value", [2 ** 40, -2 ** 31 - 1, float("nan"), float("inf"), 1e10,
                                   np.int64(2 ** 33), np.array([1, 2 ** 32])])
def test_value_that_does_not_fit_is_refused(value):
    i = vt.iscalar("i") if np.ndim(value) == 0 else vt.ivector("i")
    f = vmc.function([i], i * 1, allow_input_downcast=True)
    with pytest.raises(TypeError, match=r"argument 0 \('i'\).*does not fit in int32"):
        f(value)


@pytest.mark.parametrize("value, want", [(3.7, 3), (-2 ** 31, -2 ** 31), (2 ** 31 - 1, 2 ** 31 - 1),
                                         (np.int64(-5), -5), (True, 1)])
def test_value_that_fits_is_converted(value, want):
    i = vt.iscalar("i")
    f = vmc.function([i], i * 1, allow_input_downcast=True)
    assert f(value) == want and f(value).dtype == np.int32


def test_float32_overflow_is_refused_and_precision_loss_is_not():
    x = vt.fvector("x")
    f = vmc.function([x], x * 1, allow_input_downcast=True)
    with pytest.raises(TypeError, match="does not fit in float32"):
        f(np.array([1.0, 1e300]))
    np.testing.assert_array_equal(f([np.inf, 0.1]), np.array([np.inf, 0.1], np.float32))


def test_big_python_int_for_a_float_input():
    d = vt.dscalar("d")
    f = vmc.function([d], d * 1)
    assert f(2 ** 70) == 2.0 ** 70
    with pytest.raises(TypeError, match=r"argument 0 \('d'\)"):
        f(10 ** 400)
    i = vt.lscalar("i")
    with pytest.raises(TypeError, match=r"argument 0 \('i'\)"):
        vmc.function([i], i * 1, allow_input_downcast=True)(2 ** 70)
