"""vmc_math.h against numpy, in ulps, on millions of points per function.

Inputs: random bit patterns over the whole range (nan, inf, subnormals
included), uniform and log-uniform draws over each function's interesting
range, dense sweeps of consecutive floats around its edges (overflow,
underflow, the subnormal boundary, 0, multiples of pi/2), and special values.
The float64 reference is numpy float64 (glibc), or long double where numpy
has no such function; float32 is checked against the float64 reference
rounded to float32, i.e. against an almost correctly rounded result.

Every vector width this CPU has is checked: its widest (AVX-512 here, 512-bit vectors)
and each narrower x86 level, pinned through VMC_CFLAGS.

Run as a script to print the max ulp error per function and dtype.
"""
import math
import os
import zlib

import numpy as np
import pytest

from cache_helpers import vector_widths
from vmc.thunks.cgen.cache import compile_module

MAX_ULP = 4
FUNCS = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus",
         "sin", "cos", "erf", "log2", "log10"]
TRIG = {"sin", "cos"}
FIXUP = {"sin": "vmc_trig_big", "cos": "vmc_trig_big", "exp": "vmc_exp_big",
         "sigmoid": "vmc_exp_big", "softplus": "vmc_exp_big"}   # fast variant + predicate


# The full-range functions that also have a fast variant, checked on their own.
EXACT = [f"{f}_exact" for f in FIXUP]


def _c_source():
    loops, table = [], []
    for f in FUNCS + EXACT:
        for ct, sfx, tag in (("double", "", "f64"), ("float", "f", "f32")):
            cname = f"vmc_{f.replace('_exact', '')}{sfx}"
            body = f"for (npy_intp i = 0; i < n; i++) y[i] = {cname}(x[i]);"
            if f in FIXUP:   # the vectorized variant plus the fix-up of big arguments
                big = FIXUP[f] + sfx
                body = (f"for (npy_intp i = 0; i < n; i++) y[i] = vmc_{f}{sfx}_fast(x[i]);\n"
                        f"    for (npy_intp i = 0; i < n; i++) if ({big}(x[i])) y[i] = {cname}(x[i]);")
            loops.append(f"static void run_{f}_{tag}(const {ct} *restrict x, {ct} *restrict y, "
                         f"npy_intp n) {{\n    {body}\n}}")
            table.append(f'{{"{f}_{tag}", (void (*)(const void *, void *, npy_intp))run_{f}_{tag}}}')
    return "#include \"vmc_math.h\"\n" + "\n".join(loops) + r"""
typedef struct { const char *name; void (*fn)(const void *, void *, npy_intp); } entry;
static const entry TABLE[] = {""" + ",\n".join(table) + r""", {NULL, NULL}};
static PyObject *apply(PyObject *self, PyObject *args) {
    const char *name; PyArrayObject *x, *y;
    if (!PyArg_ParseTuple(args, "sO!O!", &name, &PyArray_Type, &x, &PyArray_Type, &y)) return NULL;
    for (const entry *e = TABLE; e->name; e++)
        if (!strcmp(e->name, name)) {
            e->fn(PyArray_DATA(x), PyArray_DATA(y), PyArray_SIZE(x));
            Py_RETURN_NONE;
        }
    PyErr_SetString(PyExc_KeyError, name);
    return NULL;
}
static const vmc_export VMC_EXPORTS[] = {{NULL}};
static PyMethodDef VMC_METHODS[] = {{"apply", apply, METH_VARARGS, NULL}, {NULL}};
"""



@pytest.fixture(scope="module", params=vector_widths(), ids=lambda w: w[0])
def cmath(request):
    old = os.environ.get("VMC_CFLAGS")
    os.environ["VMC_CFLAGS"] = request.param[1]
    try:
        return compile_module(_c_source(), f"mathtest_{request.param[0]}")
    finally:
        if old is None:
            del os.environ["VMC_CFLAGS"]
        else:
            os.environ["VMC_CFLAGS"] = old


def run(mod, f, x):
    y = np.empty_like(x)
    mod.apply(f"{f}_{'f64' if x.dtype == np.float64 else 'f32'}", np.ascontiguousarray(x), y)
    return y


# ------------------------------------------------------------ references

def _ld(fn):
    """A float64 reference computed in x87 long double (64-bit mantissa)."""
    def ref(x):
        with np.errstate(all="ignore"):
            return fn(x.astype(np.longdouble)).astype(np.float64)
    return ref


_erf = np.frompyfunc(math.erf, 1, 1)
REF64 = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "tanh": np.tanh,
    "sin": np.sin, "cos": np.cos, "log2": np.log2, "log10": np.log10,
    "sigmoid": _ld(lambda x: 1 / (1 + np.exp(-x))),
    "softplus": _ld(lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))),
    "erf": lambda x: _erf(x).astype(np.float64),
}


def reference(f, x):
    f = f.replace("_exact", "")
    with np.errstate(all="ignore"):
        if x.dtype == np.float64:
            return REF64[f](x)
        return REF64[f](x.astype(np.float64)).astype(np.float32)


# ---------------------------------------------------------------- inputs

def _sweep(x0, dtype, n):
    """n consecutive floats on each side of x0."""
    it = np.int64 if dtype == np.float64 else np.int32
    i0 = np.array([x0], dtype).view(it)[0]
    return (i0 + np.arange(-n, n + 1, dtype=it)).view(dtype)


EDGES = {  # (float64 edges, float32 edges)
    "exp": ([709.782712893384, -745.1332191019412, -708.3964185322641, 0.0],
            [88.72284, -103.27893, -87.33655, 0.0]),
    "expm1": ([709.782712893384, -37.0, 0.0, 0.34657359, -0.34657359], [88.72284, 0.0, 0.3465736]),
    "log": ([1.0, 2.2250738585072014e-308, 5e-324, 0.7071067811865476, 1.4142135623730951],
            [1.0, 1.1754944e-38, 1e-45, 0.70710677]),
    "log1p": ([-1.0, 0.0, -0.2928932188134524, 0.41421356237309515, 1e300],
              [-1.0, 0.0, -0.29289323, 0.41421357]),
    "tanh": ([0.0, 20.0, 0.55, 1e-9], [0.0, 9.0, 0.55]),
    "sigmoid": ([0.0, -708.4, -745.1, 36.7], [0.0, -87.3, -103.0, 16.6]),
    "softplus": ([0.0, -708.4, -745.1, 36.7, 709.8], [0.0, -87.3, -103.0, 16.6]),
    "erf": ([0.0, 0.84375, 1.5, 2.5, 5.9, 6.0], [0.0, 0.84375, 1.5, 2.5, 3.9]),
    "log2": ([1.0, 2.0, 0.5, 1e-310], [1.0, 2.0, 0.5]),
    "log10": ([1.0, 10.0, 1000.0, 0.1], [1.0, 10.0, 1000.0]),
}
RANGES = {"exp": (-750, 712), "expm1": (-60, 712), "log": (0, 10), "log1p": (-1, 10),
          "tanh": (-25, 25), "sigmoid": (-760, 760), "softplus": (-760, 760),
          "sin": (-2e6, 2e6), "cos": (-2e6, 2e6), "erf": (-7, 7), "log2": (0, 10),
          "log10": (0, 10)}
SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 5e-324, -5e-324, 2.2250738585072014e-308,
           1.7976931348623157e308, -1.7976931348623157e308, 1e-300, -1e-300, 3.0, -3.0]


def inputs(f, dtype, n_random):
    rng = np.random.default_rng(zlib.crc32(f"{f}{np.dtype(dtype).name}".encode()))
    f = f.replace("_exact", "")
    it, ut = (np.int64, np.uint64) if dtype == np.float64 else (np.int32, np.uint32)
    parts = [rng.integers(0, np.iinfo(ut).max, n_random, dtype=ut, endpoint=True).view(dtype)]
    lo, hi = RANGES[f]
    parts.append(rng.uniform(lo, hi, n_random).astype(dtype))
    parts.append(rng.uniform(-10, 10, n_random // 2).astype(dtype))
    tiny = 10.0 ** rng.uniform(-45 if dtype == np.float32 else -320, 1, n_random // 4)
    parts.append((tiny * rng.choice([-1, 1], tiny.size)).astype(dtype))
    f64, f32 = EDGES.get(f, ([0.0], [0.0]))
    for e in (f64 if dtype == np.float64 else f32):
        parts += [_sweep(e, dtype, 5000), -_sweep(e, dtype, 5000)]
    if f in TRIG:   # floats closest to multiples of pi/2: the worst cancellation
        k = np.concatenate([np.arange(1, 20000), rng.integers(1, 10**6, 20000)])
        m = (k * (np.pi / 2)).astype(dtype)
        parts += [m, -m, np.nextafter(m, dtype(np.inf)), np.nextafter(m, dtype(0))]
        parts.append(np.float32(1e30) if dtype == np.float32 else np.array([1e300, 1e22]))
    with np.errstate(all="ignore"):
        parts.append(np.array(SPECIAL).astype(dtype))
    return np.concatenate([np.atleast_1d(np.asarray(p, dtype)) for p in parts])


def ulp_distance(a, b):
    """|a - b| in units in the last place; nan==nan is 0, nan vs number is inf."""
    it = np.int64 if a.dtype == np.float64 else np.int32
    ia, ib = a.view(it).astype(np.int64), b.view(it).astype(np.int64)
    lo = np.int64(np.iinfo(it).min)
    oa, ob = np.where(ia < 0, lo - ia, ia), np.where(ib < 0, lo - ib, ib)
    same = (oa >= 0) == (ob >= 0)
    d = np.where(same, np.abs(oa - ob), 0).astype(np.float64)
    d = np.where(same, d, np.abs(oa.astype(np.float64)) + np.abs(ob.astype(np.float64)))
    na, nb = np.isnan(a), np.isnan(b)
    d = np.where(na & nb, 0.0, d)
    return np.where(na ^ nb, np.inf, d)


def check(mod, f, dtype, n_random):
    x = inputs(f, dtype, n_random)
    got, want = run(mod, f, x), reference(f, x)
    d = ulp_distance(got, want)
    zero = (want == 0) & (got == 0)
    bad_sign = zero & (np.signbit(want) != np.signbit(got))
    return x, got, want, d, bad_sign


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("f", FUNCS + EXACT)
def test_ulp(cmath, f, dtype):
    x, got, want, d, bad_sign = check(cmath, f, dtype, 500_000)
    worst = int(np.argmax(d))
    assert d[worst] <= MAX_ULP, (f"{f}({x[worst]!r}) = {got[worst]!r}, numpy {want[worst]!r}: "
                                 f"{d[worst]} ulp")
    assert not bad_sign.any(), f"{f}: wrong sign of zero at {x[bad_sign][:5]}"


def test_trig_big_arguments_are_flagged(cmath):
    x = np.array([1e7, -1e7, 1e300, np.inf, 1.0, np.nan])
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(run(cmath, "sin", x), np.sin(x))


if __name__ == "__main__":
    m = compile_module(_c_source(), "mathtest")
    for f in FUNCS + EXACT:
        row = []
        for dt in (np.float64, np.float32):
            x, got, want, d, bad_sign = check(m, f, dt, 2_000_000)
            row.append(f"{np.dtype(dt).name}: max {d.max():.0f} ulp, "
                       f"{(d > 1).mean() * 100:.3f}% > 1 ulp, n={x.size}")
        print(f"{f:9s}", " | ".join(row))
