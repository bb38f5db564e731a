"""The scalar operations that elementwise ops apply, as a table.

Each entry: name, arity, the numpy/scipy implementation (which also defines
the output dtype, NumPy's own promotion rules), and the pullback written with
tensor operations on whole arrays (elementwise ops act per element, so the
scalar derivative applied to arrays is the array derivative).

The C templates for each name live beside the code generator
(``vmc/thunks/cgen/scalar_c.py``), not here.
"""
from __future__ import annotations

import math

import numpy as np

from vmc.graph.grad import ZERO_GRADIENT, NullGradient


class _Special:
    """A function of scipy.special, named: imported on first use, since importing
    scipy.special costs more than the rest of ``import vmc`` (0.35 s of 0.8)."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def load(self):
        import scipy.special
        return getattr(scipy.special, self.name)


class ScalarOp:
    """One scalar operation. Equal names (and parameters) mean equal ops."""
    __slots__ = ("name", "nin", "_impl", "grad", "kind", "param")

    def __init__(self, name, nin, impl, grad=None, kind="numeric", param=None):
        self.name, self.nin, self._impl, self.grad = name, nin, impl, grad
        self.kind = kind      # "numeric", "bool" (comparisons, logic), "int" (no gradient)
        self.param = param    # the target dtype of a cast

    @property
    def impl(self):
        """The numpy or scipy function (a ufunc where there is one)."""
        if isinstance(self._impl, _Special):
            self._impl = self._impl.load()
        return self._impl

    def __eq__(self, other):
        return isinstance(other, ScalarOp) and (self.name, self.param) == (other.name, other.param)

    def __hash__(self):
        return hash((self.name, self.param))

    def __repr__(self):
        return self.name if self.param is None else f"{self.name}[{self.param}]"

    def __reduce__(self):
        return (get_scalar_op, (self.name, self.param))

    def output_dtype(self, dtypes):
        if self.name == "cast":
            return self.param
        return _numpy_result_dtype(self.impl, tuple(dtypes))


_dtype_cache = {}


def _numpy_result_dtype(fn, dtypes):
    key = (fn, dtypes)
    if key not in _dtype_cache:
        args = [np.ones(1, d) for d in dtypes]
        with np.errstate(all="ignore"):
            _dtype_cache[key] = str(np.asarray(fn(*args)).dtype)
    return _dtype_cache[key]


def _t():
    import vmc.tensor as vt
    return vt


# -- pullbacks ---------------------------------------------------------------
# Each takes (inputs, output, gz) and returns one gradient per input.
def _g_add(i, o, g): return [g] * len(i)
def _g_sub(i, o, g): return [g, -g]
def _g_mul(i, o, g): return [g * i[1], g * i[0]]
def _g_div(i, o, g): return [g / i[1], -g * o / i[1]]
def _g_neg(i, o, g): return [-g]
def _g_abs(i, o, g): return [g * _t().sign(i[0])]
def _g_exp(i, o, g): return [g * o]
def _g_log(i, o, g): return [g / i[0]]
def _g_log1p(i, o, g): return [g / (i[0] + 1)]
def _g_expm1(i, o, g): return [g * (o + 1)]
def _g_log2(i, o, g): return [g / (i[0] * math.log(2.0))]
def _g_log10(i, o, g): return [g / (i[0] * math.log(10.0))]
def _g_sqrt(i, o, g): return [g * 0.5 / o]
def _g_sqr(i, o, g): return [g * 2 * i[0]]
def _g_recip(i, o, g): return [-g * o * o]
def _g_tanh(i, o, g): return [g * (1 - o * o)]
def _g_sigmoid(i, o, g): return [g * o * (1 - o)]
def _g_softplus(i, o, g): return [g * _t().sigmoid(i[0])]
def _g_sin(i, o, g): return [g * _t().cos(i[0])]
def _g_cos(i, o, g): return [-g * _t().sin(i[0])]
def _g_tan(i, o, g): return [g * (1 + o * o)]
def _g_arcsin(i, o, g): return [g / _t().sqrt(1 - i[0] * i[0])]
def _g_arccos(i, o, g): return [-g / _t().sqrt(1 - i[0] * i[0])]
def _g_arctan(i, o, g): return [g / (1 + i[0] * i[0])]
def _g_sinh(i, o, g): return [g * _t().cosh(i[0])]
def _g_cosh(i, o, g): return [g * _t().sinh(i[0])]
def _g_arcsinh(i, o, g): return [g / _t().sqrt(i[0] * i[0] + 1)]
def _g_erf(i, o, g): return [g * (2 / math.sqrt(math.pi)) * _t().exp(-i[0] * i[0])]
def _g_erfc(i, o, g): return [-g * (2 / math.sqrt(math.pi)) * _t().exp(-i[0] * i[0])]
def _g_erfinv(i, o, g): return [g * (math.sqrt(math.pi) / 2) * _t().exp(o * o)]
def _g_gammaln(i, o, g): return [g * _t().psi(i[0])]
def _g_identity(i, o, g): return [g]
def _g_zero(i, o, g): return [ZERO_GRADIENT for x in i]


def _g_pow(i, o, g):
    x, y = i
    vt = _t()
    gx = g * y * x ** (y - 1)
    gy = g * o * vt.log(vt.switch(vt.eq(x, 0), 1, x))   # d/dy x**y, with 0**y -> 0
    return [gx, gy]


def _g_arctan2(i, o, g):
    y, x = i
    d = x * x + y * y
    return [g * x / d, -g * y / d]


def _g_max(i, o, g):
    x, y = i
    return [g * (x >= y), g * (x < y)]


def _g_min(i, o, g):
    x, y = i
    return [g * (x <= y), g * (x > y)]


def _g_switch(i, o, g):
    c = i[0]
    vt = _t()
    return [None, vt.switch(c, g, 0), vt.switch(c, 0, g)]


def _g_clip(i, o, g):
    x, lo, hi = i
    return [g * ((x >= lo) & (x <= hi)), g * (x < lo), g * (x > hi)]


def _g_mod(i, o, g):
    return [g, -g * _t().floor(i[0] / i[1])]


def _g_psi(i, o, g):
    return [NullGradient("the gradient of psi (polygamma) is not implemented")]


def _g_logaddexp(i, o, g):
    vt = _t()
    return [g * vt.exp(i[0] - o), g * vt.exp(i[1] - o)]


def _g_log1mexp(i, o, g):
    return [-g / _t().expm1(-i[0])]        # d log(1 - e^x) = -e^x / (1 - e^x)


def _g_erfcx(i, o, g):
    return [g * (2 * i[0] * o - 2 / math.sqrt(math.pi))]


def _g_gammainc(i, o, g, sign=1):
    a, x = i
    vt = _t()
    # d/dx P(a, x) = x^(a-1) e^-x / Gamma(a); no closed form in a
    dx = vt.exp((a - 1) * vt.log(x) - x - vt.gammaln(a))
    return [NullGradient("the gradient of gammainc w.r.t. its first argument is not "
                         "implemented"), g * dx * sign]


def _g_gammaincc(i, o, g):
    return _g_gammainc(i, o, g, -1)


def _g_xlogy(i, o, g):
    x, y = i
    vt = _t()
    return [g * vt.log(y), g * x / y]


def _log1mexp(x):
    # log(1 - exp(x)) for x <= 0: log(-expm1(x)) near 0, log1p(-exp(x)) below -log 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def _softplus(x):
    # log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))
    with np.errstate(over="ignore"):
        return np.logaddexp(x, np.zeros((), dtype=np.result_type(x, np.float16)))


def _switch(c, a, b):
    return np.where(c, a, b)


def _clip(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


def _sqr(x):
    return np.multiply(x, x)


def _reciprocal(x):
    return np.divide(1, x) if np.asarray(x).dtype.kind in "biu" else np.reciprocal(x)


def _identity(x):
    return np.array(x, copy=True)


_TABLE = [
    # name, arity, implementation, pullback, kind
    ("add", 2, np.add, _g_add, "numeric"),
    ("sub", 2, np.subtract, _g_sub, "numeric"),
    ("mul", 2, np.multiply, _g_mul, "numeric"),
    ("true_div", 2, np.true_divide, _g_div, "numeric"),
    ("int_div", 2, np.floor_divide, _g_zero, "numeric"),
    ("mod", 2, np.mod, _g_mod, "numeric"),
    ("pow", 2, np.power, _g_pow, "numeric"),
    ("maximum", 2, np.maximum, _g_max, "numeric"),
    ("minimum", 2, np.minimum, _g_min, "numeric"),
    ("arctan2", 2, np.arctan2, _g_arctan2, "numeric"),
    ("neg", 1, np.negative, _g_neg, "numeric"),
    ("abs", 1, np.abs, _g_abs, "numeric"),
    ("sign", 1, np.sign, _g_zero, "numeric"),
    ("exp", 1, np.exp, _g_exp, "numeric"),
    ("log", 1, np.log, _g_log, "numeric"),
    ("log1p", 1, np.log1p, _g_log1p, "numeric"),
    ("expm1", 1, np.expm1, _g_expm1, "numeric"),
    ("log2", 1, np.log2, _g_log2, "numeric"),
    ("log10", 1, np.log10, _g_log10, "numeric"),
    ("sqrt", 1, np.sqrt, _g_sqrt, "numeric"),
    ("sqr", 1, _sqr, _g_sqr, "numeric"),
    ("reciprocal", 1, _reciprocal, _g_recip, "numeric"),
    ("tanh", 1, np.tanh, _g_tanh, "numeric"),
    ("sigmoid", 1, _Special("expit"), _g_sigmoid, "numeric"),
    ("softplus", 1, _softplus, _g_softplus, "numeric"),
    ("sin", 1, np.sin, _g_sin, "numeric"),
    ("cos", 1, np.cos, _g_cos, "numeric"),
    ("tan", 1, np.tan, _g_tan, "numeric"),
    ("arcsin", 1, np.arcsin, _g_arcsin, "numeric"),
    ("arccos", 1, np.arccos, _g_arccos, "numeric"),
    ("arctan", 1, np.arctan, _g_arctan, "numeric"),
    ("sinh", 1, np.sinh, _g_sinh, "numeric"),
    ("cosh", 1, np.cosh, _g_cosh, "numeric"),
    ("arcsinh", 1, np.arcsinh, _g_arcsinh, "numeric"),
    ("erf", 1, _Special("erf"), _g_erf, "numeric"),
    ("erfc", 1, _Special("erfc"), _g_erfc, "numeric"),
    ("erfinv", 1, _Special("erfinv"), _g_erfinv, "numeric"),
    ("gammaln", 1, _Special("gammaln"), _g_gammaln, "numeric"),
    ("psi", 1, _Special("psi"), _g_psi, "numeric"),
    ("logaddexp", 2, np.logaddexp, _g_logaddexp, "numeric"),
    ("log1mexp", 1, _log1mexp, _g_log1mexp, "numeric"),
    ("erfcx", 1, _Special("erfcx"), _g_erfcx, "numeric"),
    ("gammainc", 2, _Special("gammainc"), _g_gammainc, "numeric"),
    ("gammaincc", 2, _Special("gammaincc"), _g_gammaincc, "numeric"),
    ("xlogy", 2, _Special("xlogy"), _g_xlogy, "numeric"),
    ("floor", 1, np.floor, _g_zero, "numeric"),
    ("ceil", 1, np.ceil, _g_zero, "numeric"),
    ("round", 1, np.round, _g_zero, "numeric"),
    ("identity", 1, _identity, _g_identity, "numeric"),
    ("switch", 3, _switch, _g_switch, "numeric"),
    ("clip", 3, _clip, _g_clip, "numeric"),
    ("eq", 2, np.equal, None, "bool"),
    ("neq", 2, np.not_equal, None, "bool"),
    ("lt", 2, np.less, None, "bool"),
    ("le", 2, np.less_equal, None, "bool"),
    ("gt", 2, np.greater, None, "bool"),
    ("ge", 2, np.greater_equal, None, "bool"),
    ("and", 2, np.bitwise_and, None, "bool"),
    ("or", 2, np.bitwise_or, None, "bool"),
    ("xor", 2, np.bitwise_xor, None, "bool"),
    ("invert", 1, np.invert, None, "bool"),
    ("isnan", 1, np.isnan, None, "bool"),
    ("isinf", 1, np.isinf, None, "bool"),
]

SCALAR_OPS = {name: ScalarOp(name, nin, impl, grad, kind)
              for name, nin, impl, grad, kind in _TABLE}


def _cast_impl(dtype):
    return lambda x: np.asarray(x).astype(dtype)


def get_scalar_op(name, param=None):
    if name == "cast":
        return ScalarOp("cast", 1, _cast_impl(param), _g_identity, "numeric", param)
    return SCALAR_OPS[name]
