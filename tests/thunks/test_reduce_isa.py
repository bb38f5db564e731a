"""Fused reductions over inputs of mixed widths, at every vector width this CPU has.

GCC 12 at -O3 miscompiled the lane-parallel row reduction of integer lanes fed
by narrower inputs (int32 + int32 summed into int64, eq(int64, int32) counted),
with SSE, AVX2 and AVX-512 alike: a small CNN's accuracy read 0.32 for 0.55.
Integer results are checked exactly against numpy, around the lane count (8)
and the lane block (2048).
"""
import numpy as np
import pytest

from vmc.thunks.cgen import KernelSpec, build_kernels
from cache_helpers import vector_widths
from vmc.thunks.cgen.caller import call

SIZES = [1, 7, 8, 9, 15, 16, 17, 31, 100, 2047, 2049, 5003]
PAIRS = [("int64", "int32"), ("int32", "int32"), ("int64", "int64"), ("int8", "int64"),
         ("uint8", "int32"), ("float64", "float32"), ("float32", "int32")]
OPS = {"add": np.sum, "maximum": np.max, "minimum": np.min}



def _result_dtype(a, b):
    return np.result_type(a, b).name


def _specs():
    """(name, spec, numpy reference of (x, y)) for each body, pair and op."""
    out = []
    for a, b in PAIRS:
        ins = ((a, (False,)), (b, (False,)))
        acc = "float64" if "float" in a + b else "int64"
        for op, npop in OPS.items():
            if op == "add":   # count of equal elements: eq, then a cast to the accumulator
                body = (("t", "eq", ("i0", "i1"), "bool"), ("u", "cast", ("t",), acc))
                ref = (lambda x, y, npop=npop, acc=acc:
                       npop((x == y).astype(acc)))
                out.append((f"count_eq-{a}-{b}", KernelSpec(ins, body, outputs=(("u", acc),),
                                                             reduce=(op, (0,), False)), ref))
            rt = _result_dtype(a, b)
            body = (("t", "add", ("i0", "i1"), rt),)
            ref = lambda x, y, npop=npop, rt=rt: npop(x.astype(rt) + y.astype(rt))  # noqa: E731
            out.append((f"{op}-{a}-{b}", KernelSpec(ins, body, outputs=(("t", rt),),
                                                    reduce=(op, (0,), False)), ref))
    return out


def _draw(dtype, n, rng):
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(n).astype(dtype)
    return rng.integers(0, 3, n).astype(dtype)      # small values: eq is often true


@pytest.fixture(scope="module", params=vector_widths(), ids=lambda w: w[0])
def kernels(request):
    mp = pytest.MonkeyPatch()
    mp.setenv("VMC_CFLAGS", request.param[1])
    try:
        specs = _specs()
        thunks = build_kernels([s for _, s, _ in specs], name_hint=f"reduce_{request.param[0]}")
    finally:
        mp.undo()
    return [(name, th, ref) for (name, _, ref), th in zip(specs, thunks)]


@pytest.mark.parametrize("n", SIZES)
def test_mixed_width_reductions_match_numpy(kernels, n):
    rng = np.random.default_rng(n)
    bad = []
    for name, thunk, ref in kernels:
        a, b = name.split("-")[1:]
        x, y = _draw(a, n, rng), _draw(b, n, rng)
        got, = call(thunk, x, y)
        want = ref(x, y)
        if np.asarray(want).dtype.kind == "f":
            ok = np.allclose(got, want, rtol=1e-6, atol=1e-6 * n)
        else:
            ok = got == want
        if not ok:
            bad.append(f"{name}: got {got}, numpy {want}")
    assert not bad, "\n".join(bad)
