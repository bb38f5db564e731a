"""Generated elementwise kernels against numpy.

Every (op, dtype) the scalar table supports is one kernel; all of them are
compiled into one module (through the cache, so a warm run compiles
nothing). Thunks run through the Cython VM when it is built, else through the
small C caller of vmc.thunks.cgen.caller.
"""
import math
import zlib

import numpy as np
import pytest
import scipy.special as sps

from vmc.program import THUNK, Program, int_array
from vmc.thunks.cgen import KernelSpec, build_kernels
from vmc.thunks.cgen.caller import call as c_call

try:
    from vmc._vm import VM
except ImportError:   # the Cython VM is not built: call the thunks directly
    VM = None


def run(thunk, *inputs, n_out=1):
    """Outputs of one C thunk, through the VM when there is one."""
    if VM is None:
        return c_call(thunk, *inputs, n_out=n_out)
    nin = len(inputs)
    prog = Program(
        n_regs=nin + n_out, kind=int_array([THUNK]), thunk=int_array([0]),
        in_start=int_array([0]), n_in=int_array([nin]), out_start=int_array([0]),
        n_out=int_array([n_out]), free_start=int_array([0]), n_free=int_array([0]),
        target=int_array([-1]), ins=int_array(range(nin)), outs=int_array(range(nin, nin + n_out)),
        frees=int_array([]), thunks=[thunk], input_regs=int_array(range(nin)),
        output_regs=int_array(range(nin, nin + n_out)))
    return tuple(VM(prog).run(list(inputs)))


def spec_of(op, in_dtypes, out_dtype, nd=2, bcast=None, **kw):
    bcast = bcast or [(False,) * nd] * len(in_dtypes)
    return KernelSpec(inputs=tuple((d, tuple(b)) for d, b in zip(in_dtypes, bcast)),
                      body=(("t0", op, tuple(f"i{j}" for j in range(len(in_dtypes))), out_dtype),),
                      outputs=(("t0", out_dtype),), **kw)


# ------------------------------------------------------------ the op table

F, I, U, B = ["float32", "float64"], ["int8", "int32", "int64"], ["uint8", "uint64"], ["bool"]
ALL_INT = I + U


def _np_sigmoid(x):
    return sps.expit(x)


def _libm(fn):
    """A float64 oracle through Python's math module (glibc: scipy's erfc is
    off by ~30 ulp in the far tail)."""
    u = np.frompyfunc(fn, 1, 1)
    return lambda x: u(x).astype(x.dtype)


def _correctly_rounded(fn, int_fn):
    """An oracle through mpmath: fn evaluated with 120 bits, then rounded once to the
    argument's format (24 or 53 bits; the domains stay clear of subnormals). numpy's own
    results depend on the CPU (its AVX-512 pow rounds differently from its AVX2 one).
    Integer arguments go to int_fn, which is exact."""
    import mpmath

    def oracle(*xs):
        dt = xs[0].dtype
        if dt.kind != "f":
            return int_fn(*xs)
        bits = {np.dtype(np.float32): 24, np.dtype(np.float64): 53}[dt]

        def one(*args):
            with mpmath.workprec(120):
                exact = fn(*(mpmath.mpf(float(a)) for a in args))
            with mpmath.workprec(bits):
                return float(+exact)   # unary plus rounds to the working precision

        return np.frompyfunc(one, len(xs), 1)(*xs).astype(dt)
    oracle.correctly_rounded = True
    return oracle


# op -> (numpy function, arity, dtypes, input domain, tolerance in ulp (None: exact))
OPS = {
    # libm's pow and powf stay under 1 ulp of the correctly rounded result (glibc: 0.52
    # and 0.82 ulp), so a correct kernel is at most 1 ulp from it, on every CPU
    "pow": (_correctly_rounded(lambda a, b: a ** b, np.power), 2, F + ALL_INT, "pow", 1),
    "add": (np.add, 2, F + ALL_INT + B, "any", 0),
    "sub": (np.subtract, 2, F + ALL_INT, "any", 0),
    "mul": (np.multiply, 2, F + ALL_INT + B, "any", 0),
    "true_div": (np.true_divide, 2, F, "any", 0),
    "int_div": (np.floor_divide, 2, F + ALL_INT, "any", 0),
    "mod": (np.remainder, 2, F + ALL_INT, "any", 0),
    "neg": (np.negative, 1, F + ALL_INT, "any", 0),
    "abs": (np.abs, 1, F + ALL_INT + B, "any", 0),
    "sign": (np.sign, 1, F + ALL_INT, "any", 0),
    "exp": (np.exp, 1, F, "any", 4), "log": (np.log, 1, F, "pos", 4),
    "log1p": (np.log1p, 1, F, "pos", 4), "expm1": (np.expm1, 1, F, "any", 4),
    "log2": (np.log2, 1, F, "pos", 4), "log10": (np.log10, 1, F, "pos", 4),
    "sqrt": (np.sqrt, 1, F, "pos", 0), "sqr": (np.square, 1, F + ALL_INT, "any", 0),
    "reciprocal": (np.reciprocal, 1, F + ALL_INT, "nonzero", 0),
    "tanh": (np.tanh, 1, F, "any", 4), "sigmoid": (_np_sigmoid, 1, F, "any", 4),
    "softplus": (lambda x: np.logaddexp(np.zeros_like(x), x), 1, F, "any", 4),
    "sin": (np.sin, 1, F, "trig", 4), "cos": (np.cos, 1, F, "trig", 4),
    "tan": (np.tan, 1, F, "small", 4), "arcsin": (np.arcsin, 1, F, "unit", 4),
    "arccos": (np.arccos, 1, F, "unit", 4), "arctan": (np.arctan, 1, F, "any", 4),
    "arctan2": (np.arctan2, 2, F, "any", 4), "sinh": (np.sinh, 1, F, "small", 4),
    "cosh": (np.cosh, 1, F, "small", 4), "arcsinh": (np.arcsinh, 1, F, "any", 4),
    "erf": (_libm(math.erf), 1, F, "any", 4), "erfc": (_libm(math.erfc), 1, F, "small", 4),
    "gammaln": (sps.gammaln, 1, F, "pos", "abs"),
    "floor": (np.floor, 1, F, "any", 0), "ceil": (np.ceil, 1, F, "any", 0),
    "round": (np.rint, 1, F, "halves", 0),
    "maximum": (np.maximum, 2, F + ALL_INT + B, "any", 0),
    "minimum": (np.minimum, 2, F + ALL_INT + B, "any", 0),
    "clip": (lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), 3, F + ALL_INT, "any", 0),
    "switch": (lambda c, a, b: np.where(c != 0, a, b), 3, F + ["int32"], "any", 0),
    "eq": (np.equal, 2, F + ALL_INT + B, "few", 0), "neq": (np.not_equal, 2, F + ALL_INT, "few", 0),
    "lt": (np.less, 2, F + ALL_INT, "few", 0), "le": (np.less_equal, 2, F + ALL_INT, "few", 0),
    "gt": (np.greater, 2, F + ALL_INT, "few", 0), "ge": (np.greater_equal, 2, F + ALL_INT, "few", 0),
    "and": (np.bitwise_and, 2, ALL_INT + B, "any", 0),
    "or": (np.bitwise_or, 2, ALL_INT + B, "any", 0),
    "xor": (np.bitwise_xor, 2, ALL_INT + B, "any", 0),
    "invert": (np.invert, 1, ALL_INT + B, "any", 0),
    "isnan": (np.isnan, 1, F + ["int32"], "any", 0), "isinf": (np.isinf, 1, F + ["int32"], "any", 0),
    "identity": (lambda x: x.copy(), 1, F + ALL_INT + B, "any", 0),
}
BOOL_RESULT = {"eq", "neq", "lt", "le", "gt", "ge", "isnan", "isinf"}
CASES = [(op, dt) for op, (_, _, dts, _, _) in OPS.items() for dt in dts]


def sample(dtype, domain, shape, rng):
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        if domain == "pow":
            return rng.integers(0, 5, shape).astype(dt)
        if domain == "few":
            return rng.integers(-2 if dt.kind == "i" else 0, 3, shape).astype(dt)
        x = rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
        x.flat[:4] = [0, info.min, info.max, 1][:x.size]
        if domain == "nonzero":
            x[x == 0] = 1
        return x
    x = {"any": lambda: rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 3, shape),
         "pos": lambda: rng.random(shape) * 10.0 ** rng.integers(-3, 4, shape),
         "nonzero": lambda: rng.standard_normal(shape) + 0.1,
         "trig": lambda: rng.standard_normal(shape) * 10.0 ** rng.integers(-2, 8, shape),
         "small": lambda: rng.uniform(-8, 8, shape), "unit": lambda: rng.uniform(-1, 1, shape),
         "pow": lambda: rng.uniform(0, 4, shape),
         "halves": lambda: rng.integers(-20, 20, shape) / 2.0 + 0.0,
         "few": lambda: rng.integers(-2, 3, shape).astype(float)}[domain]().astype(dt)
    if domain in ("any", "few") and x.size > 8:
        x.flat[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0]
    return x


def ulps(a, b):
    a, b = np.asarray(a), np.asarray(b)
    it = {4: np.int32, 8: np.int64}[a.dtype.itemsize]
    ia, ib = a.view(it).astype(np.int64), b.view(it).astype(np.int64)
    lo = np.int64(np.iinfo(it).min)
    ia, ib = np.where(ia < 0, lo - ia, ia), np.where(ib < 0, lo - ib, ib)
    same = (ia >= 0) == (ib >= 0)          # exact in int64; else far apart anyway
    d = np.where(same, np.abs(np.where(same, ia - ib, 0)).astype(np.float64),
                 np.abs(ia.astype(np.float64)) + np.abs(ib.astype(np.float64)))
    both = np.isnan(a) & np.isnan(b)
    return np.where(both, 0, np.where(np.isnan(a) ^ np.isnan(b), np.inf, d))


def assert_matches(got, want, tol, what=""):
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if got.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
    elif tol == "abs":
        np.testing.assert_allclose(got, want, rtol=1e-5 if got.dtype == np.float32 else 1e-12,
                                   atol=1e-5 if got.dtype == np.float32 else 1e-12, err_msg=what)
    else:
        d = ulps(got, want)
        i = int(np.argmax(d)) if d.size else 0
        assert d.size == 0 or d.flat[i] <= tol, (
            f"{what}: {d.flat[i]} ulp at element {i}: got {got.flat[i]!r}, numpy {want.flat[i]!r}")


def case_spec(op, dtype, nd=2, bcast=None, **kw):
    fn, arity, _, _, _ = OPS[op]
    ins = [dtype] * arity
    if op == "switch":
        ins = ["bool", dtype, dtype]
    out = "bool" if op in BOOL_RESULT else dtype
    return spec_of(op, ins, out, nd, bcast, **kw)


@pytest.fixture(scope="module")
def table_thunks():
    specs = [case_spec(op, dt) for op, dt in CASES]
    return dict(zip(CASES, build_kernels(specs, name_hint="optable")))


@pytest.mark.parametrize("op,dtype", CASES, ids=[f"{o}-{d}" for o, d in CASES])
def test_op_vs_numpy(table_thunks, op, dtype):
    fn, arity, _, domain, tol = OPS[op]
    rng = np.random.default_rng(zlib.crc32(f"{op}{dtype}".encode()))
    shape = (7, 301)                   # odd sizes: vector loop tails
    xs = [sample(dtype, domain, shape, rng) for _ in range(arity)]
    if op == "switch":
        xs[0] = rng.random(shape) < 0.5
    if op == "clip":
        xs[1], xs[2] = np.minimum(xs[1], xs[2]), np.maximum(xs[1], xs[2])
    with np.errstate(all="ignore"):
        if dtype == "float32" and tol and not getattr(fn, "correctly_rounded", False):
            # float64 numpy rounded: a sharper oracle than float32 numpy
            want = np.asarray(fn(*[x.astype(np.float64) for x in xs])).astype(np.float32)
        else:
            want = np.asarray(fn(*xs))
        got, = run(table_thunks[(op, dtype)], *xs)
    assert_matches(got, want, tol, f"{op}[{dtype}]")


# ------------------------------------------------------------ the driver

EXPR = KernelSpec(   # exp(x * y) + 0.5
    inputs=(("float64", (False, False)), ("float64", (False, False))),
    body=(("t0", "mul", ("i0", "i1"), "float64"), ("t1", "exp", ("t0",), "float64"),
          ("t2", "add", ("t1", "c0"), "float64")),
    constants=(("c0", 0.5, "float64"),), outputs=(("t2", "float64"),))


def expr_ref(x, y):
    return np.exp(np.asarray(x, np.float64) * np.asarray(y, np.float64)) + 0.5


@pytest.fixture(scope="module")
def kernels():
    import dataclasses as dc
    ks = {
        "expr": EXPR,
        "expr_inplace": dc.replace(EXPR, inplace=((0, 0),)),
        "row_col": dc.replace(EXPR, inputs=(("float64", (False, True)), ("float64", (True, False)))),
        "scalar_y": dc.replace(EXPR, inputs=(("float64", (False, False)), ("float64", (True, True)))),
        "zero_d": dc.replace(EXPR, inputs=(("float64", ()), ("float64", ()))),
        "mixed": dc.replace(EXPR, inputs=(("float32", (False, False)), ("int32", (False, False)))),
        "sin_big": spec_of("sin", ["float64"], "float64", nd=1),
        "sin_big32": spec_of("sin", ["float32"], "float32", nd=1),
        "two_out": KernelSpec(inputs=(("float64", (False,)),),
                              body=(("a", "sqr", ("i0",), "float64"), ("b", "neg", ("a",), "float64")),
                              outputs=(("a", "float64"), ("b", "float32"))),
    }
    for op in ("add", "maximum", "minimum"):
        for axes in ((0, 1), (0,), (1,)):
            ks[f"sum_sq_{op}_{axes}"] = KernelSpec(
                inputs=(("float64", (False, False)),),
                body=(("t0", "sqr", ("i0",), "float64"),), outputs=(("t0", "float64"),),
                reduce=(op, axes, False))
    ks["isum"] = KernelSpec(inputs=(("int32", (False,)),), body=(("t", "identity", ("i0",), "int32"),),
                            outputs=(("t", "int64"),), reduce=("add", (0,), False))
    ks["sum2"] = KernelSpec(inputs=(("float32", (False, False)), ("float32", (True, False))),
                            body=(("t", "mul", ("i0", "i1"), "float32"), ("u", "exp", ("t",), "float32")),
                            outputs=(("t", "float32"), ("u", "float32")),
                            reduce=("add", (0,), False))
    names = list(ks)
    return dict(zip(names, build_kernels([ks[n] for n in names], name_hint="drivertest")))


def test_broadcast_row_and_column(kernels):
    x, y = np.random.rand(5, 1), np.random.rand(1, 7)
    got, = run(kernels["row_col"], x, y)
    np.testing.assert_allclose(got, expr_ref(x, y), rtol=4e-16)


@pytest.mark.parametrize("layout", ["strided", "negative", "transposed", "broadcast_view"])
def test_non_contiguous_inputs(kernels, layout):
    base = np.random.rand(40, 60)
    x = {"strided": base[::2, ::3], "negative": base[::-1, ::-2], "transposed": base[:30, :20].T,
         "broadcast_view": np.broadcast_to(base[0], (20, 60))}[layout]
    y = np.random.rand(*x.shape)
    got, = run(kernels["expr"], x, y)
    assert got.flags.c_contiguous
    np.testing.assert_allclose(got, expr_ref(x, y), rtol=4e-16)


def test_large_releases_gil_and_matches(kernels):
    x, y = np.random.rand(300, 200), np.random.rand(300, 200)
    got, = run(kernels["expr"], x, y)
    np.testing.assert_allclose(got, expr_ref(x, y), rtol=4e-16)


def test_zero_d_and_scalars(kernels):
    got, = run(kernels["zero_d"], np.array(1.5), np.float64(2.0))
    assert got.shape == () and got == expr_ref(1.5, 2.0)
    got, = run(kernels["zero_d"], 1.5, 2)                     # Python numbers
    assert got == expr_ref(1.5, 2.0)
    x = np.random.rand(3, 4)
    got, = run(kernels["scalar_y"], x, np.float64(0.25))      # numpy scalar into a (1, 1) slot
    np.testing.assert_allclose(got, expr_ref(x, 0.25), rtol=4e-16)


def test_mixed_dtypes_cast_in_loop(kernels):
    x = np.random.rand(4, 9).astype(np.float32)
    y = np.arange(36, dtype=np.int32).reshape(4, 9) % 5
    got, = run(kernels["mixed"], x, y)
    np.testing.assert_allclose(got, expr_ref(x, y), rtol=4e-16)


def test_empty(kernels):
    got, = run(kernels["expr"], np.zeros((0, 3)), np.zeros((0, 3)))
    assert got.shape == (0, 3)


def test_in_place_writes_into_the_dying_input(kernels):
    x, y = np.random.rand(6, 5), np.random.rand(6, 5)
    want = expr_ref(x, y)
    xc = x.copy()
    got, = run(kernels["expr_inplace"], xc, y)
    assert got is xc
    np.testing.assert_allclose(got, want, rtol=4e-16)
    # not C-contiguous: allowed to die, but cannot hold a C-contiguous result
    xr = x[::-1].copy()[::-1]
    got, = run(kernels["expr_inplace"], xr, y)
    assert not np.shares_memory(got, xr)
    np.testing.assert_allclose(got, want, rtol=4e-16)


def test_in_place_refused_when_another_input_overlaps(kernels):
    x = np.random.rand(6, 5)
    view = x[::-1]                    # same memory, other order: writing x would corrupt it
    want = expr_ref(x, view)
    got, = run(kernels["expr_inplace"], x, view)
    assert got is not x
    np.testing.assert_allclose(got, want, rtol=4e-16)


def test_reuse_never_overwrites_a_held_array(kernels):
    th = kernels["expr"]
    x, y = np.random.rand(3, 4), np.random.rand(3, 4)
    first, = c_call(th, x, y)
    kept = first.copy()
    second, = c_call(th, 2 * x, y)        # `first` is still held: a new buffer
    assert second is not first
    np.testing.assert_array_equal(first, kept)
    addr = second.__array_interface__["data"][0]
    del second, first
    third, = c_call(th, x, y)             # only the ctx held the buffer: reused
    assert third.__array_interface__["data"][0] == addr
    np.testing.assert_allclose(third, expr_ref(x, y), rtol=4e-16)


def test_trig_fixup_of_big_arguments(kernels):
    for name, dt in (("sin_big", np.float64), ("sin_big32", np.float32)):
        x = (np.random.standard_normal(1000) * 10.0 ** np.random.randint(-2, 9, 1000)).astype(dt)
        x[::37] = dt(3e7)
        x[5] = np.inf
        got, = run(kernels[name], x)
        with np.errstate(invalid="ignore"):
            ref = np.sin(x.astype(np.float64)).astype(dt)
        assert ulps(got, ref).max() <= 4


def test_two_outputs_with_cast(kernels):
    x = np.random.rand(50)
    a, b = run(kernels["two_out"], x, n_out=2)
    np.testing.assert_array_equal(a, x * x)
    assert b.dtype == np.float32
    np.testing.assert_array_equal(b, (-(x * x)).astype(np.float32))


@pytest.mark.parametrize("op", ["add", "maximum", "minimum"])
@pytest.mark.parametrize("axes", [(0, 1), (0,), (1,)])
@pytest.mark.parametrize("layout", ["c", "f", "strided"])
def test_fused_reduce(kernels, op, axes, layout):
    base = np.random.standard_normal((50, 70))
    x = {"c": base, "f": np.asfortranarray(base), "strided": base[::2, ::-3]}[layout]
    got, = run(kernels[f"sum_sq_{op}_{axes}"], x)
    want = {"add": np.sum, "maximum": np.max, "minimum": np.min}[op](x * x, axis=axes)
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_reduce_large_and_nan(kernels):
    x = np.random.standard_normal((3, 100003))
    got, = run(kernels["sum_sq_add_(0, 1)"], x)
    np.testing.assert_allclose(got, np.sum(x * x), rtol=1e-12)
    x[1, 777] = np.nan
    got, = run(kernels["sum_sq_maximum_(0, 1)"], x)
    assert np.isnan(got)
    got, = run(kernels["sum_sq_minimum_(1,)"], x)
    np.testing.assert_array_equal(np.isnan(got), [False, True, False])


def test_reduce_int_and_two_outputs(kernels):
    x = np.arange(-50, 1000, dtype=np.int32)
    got, = run(kernels["isum"], x)
    assert got.dtype == np.int64 and got == x.sum(dtype=np.int64)
    a, b = np.random.rand(9, 13).astype(np.float32), np.random.rand(1, 13).astype(np.float32)
    t, u = run(kernels["sum2"], a, b, n_out=2)
    np.testing.assert_allclose(t, (a * b).sum(0), rtol=1e-6)
    np.testing.assert_allclose(u, np.exp(a * b).sum(0), rtol=1e-6)


def test_reduce_empty(kernels):
    got, = run(kernels["sum_sq_add_(0, 1)"], np.zeros((0, 4)))
    assert got == 0
    with pytest.raises(ValueError, match="zero-size array to reduction operation max"):
        run(kernels["sum_sq_maximum_(0, 1)"], np.zeros((0, 4)))


def test_shape_mismatch_names_kernel_and_shapes(kernels):
    with pytest.raises(ValueError) as e:
        run(kernels["expr"], np.zeros((3, 4)), np.zeros((3, 5)))
    msg = str(e.value)
    assert "add(exp(mul(i0, i1)), c0)" in msg and "i0 (3, 4)" in msg and "i1 (3, 5)" in msg
    with pytest.raises(ValueError, match="broadcast pattern"):   # a static 1 that is not 1
        run(kernels["row_col"], np.zeros((3, 2)), np.zeros((1, 4)))


def test_unsupported_op_or_dtype_raises_not_implemented():
    with pytest.raises(NotImplementedError, match="frobnicate"):
        build_kernels([spec_of("frobnicate", ["float64"], "float64")])
    with pytest.raises(NotImplementedError):
        build_kernels([spec_of("sub", ["bool", "bool"], "bool")])
    with pytest.raises(NotImplementedError):
        build_kernels([spec_of("exp", ["complex128"], "complex128")])


def test_unsafe_array_dtype_is_refused(kernels):
    with pytest.raises(TypeError):
        run(kernels["mixed"], np.zeros((2, 2)), np.zeros((2, 2), np.int32))   # float64 -> float32


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_outlined_math_gives_the_same_bits_as_inlined(dtype, monkeypatch):
    # a module with many math calls calls vector clones of vmc_math.h's functions
    # (VMC_OUTLINE_MATH) instead of inlining them: the same operations, so the same bits
    from vmc.thunks.cgen import elemwise
    ops = ["exp", "expm1", "log", "log1p", "tanh", "sigmoid", "softplus", "sin", "cos", "erf"]
    spec = KernelSpec(
        inputs=((dtype, (False,)),),
        body=tuple((f"t{j}", op, ("i0",), dtype) for j, op in enumerate(ops)),
        outputs=tuple((f"t{j}", dtype) for j in range(len(ops))))
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-310, -1e-310, 1e-30, 700.0, -750.0, 88.5,
               -104.0, 3e5, 1e22]
    x = np.concatenate([np.array(special), np.random.default_rng(5).standard_normal(5000) * 8,
                        np.geomspace(1e-8, 1e8, 3000)]).astype(dtype)
    got, tables = {}, []
    for limit in (10 ** 9, 1):
        monkeypatch.setattr(elemwise, "OUTLINE_MIN_CALLS", limit)
        src, _ = elemwise.module_source([spec])
        assert src.startswith("#define VMC_OUTLINE_MATH") == (limit == 1)
        with np.errstate(all="ignore"):
            thunk = build_kernels([spec])[0]
            got[limit] = run(thunk, x, n_out=len(ops))
        tables.append(thunk.keepalive[0])
    assert tables[0] is not tables[1]          # two libraries, not one found twice
    for op, a, b in zip(ops, got[10 ** 9], got[1]):
        np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"), err_msg=op)


def _chain_spec(n_ops, dtype="float64"):
    """``n_ops`` ops cycling *x, +0.1, tanh, -r over x (2-D) and r (one value per
    row); outputs the last value and, cast to float32, the tenth."""
    body, prev = [], "i0"
    for m in range(n_ops):
        op, args = [("mul", (prev, "i0")), ("add", (prev, "c0")), ("tanh", (prev,)),
                    ("sub", (prev, "i1"))][m % 4]
        body.append((f"t{m}", op, args, dtype))
        prev = f"t{m}"
    return KernelSpec(inputs=((dtype, (False, False)), (dtype, (False, True))),
                      body=tuple(body), constants=(("c0", 0.1, dtype),),
                      outputs=((prev, dtype), ("t9", "float32")))


def _chain_numpy(x, r, n_ops):
    y, tenth = x, None
    for m in range(n_ops):
        y = [lambda v: v * x, lambda v: v + 0.1, np.tanh, lambda v: v - r][m % 4](y)
        tenth = y.astype(np.float32) if m == 9 else tenth
    return y, tenth


@pytest.mark.parametrize("cols", [0, 1, 7, 8, 9, 203, 600])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_block_form_gives_the_row_loops_bits(cols, layout, monkeypatch):
    # a kernel too big for GCC to inline runs as vectorized blocks of BLOCK_LANES
    # elements (tier 1) or as segments, loops over blocks of up to 256 (tier 2): the
    # tail padded, strided data gathered; the same operations, so the same bits
    from vmc.thunks.cgen import elemwise
    n_ops = 140
    spec = _chain_spec(n_ops)
    rng = np.random.default_rng(cols)
    x = rng.standard_normal((3, cols * 3 if layout == "strided" else cols))
    x = x[:, ::3] if layout == "strided" else x
    r = rng.standard_normal((3, 1))
    got = {}
    for limit, tier in ((10 ** 9, None), (1, 1), (1, 2)):
        monkeypatch.setattr(elemwise, "BLOCK_MIN_OPS", limit)
        src = elemwise.module_source([spec], tier=tier or 2)[0]
        assert ("_blk(" in src, "_sblk(" in src) == (tier == 1, tier == 2)
        got[tier] = run(build_kernels([spec], tier=tier)[0], x, r, n_out=2)
    for tier in (1, 2):
        for a, b in zip(got[None], got[tier]):
            np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))
    want = _chain_numpy(x, r, n_ops)
    np.testing.assert_allclose(got[2][0], want[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(got[2][1], want[1])


@pytest.mark.parametrize("tier", [1, 2])
def test_block_form_in_place_writes_into_the_dying_input(tier):
    import dataclasses
    from vmc.thunks.cgen import elemwise
    spec = dataclasses.replace(_chain_spec(140), inplace=((0, 0),))
    assert elemwise.block_form(spec)
    x = np.random.default_rng(1).standard_normal((4, 337))
    r = np.random.default_rng(2).standard_normal((4, 1))
    want = _chain_numpy(x, r, 140)
    xc = x.copy()
    got = run(build_kernels([spec], tier=tier)[0], xc, r, n_out=2)
    assert got[0] is xc
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(got[1], want[1])
