"""Long fused kernels as segments (tier 2, vmc/thunks/cgen/segments.py) against the
row loop and the block form (tier 1): random bodies over float64, float32, int32,
int64 and bool, with values that live across many segments, row-scalar inputs, a
constant and an input among the outputs, in place, strided and broadcast data.
The row loop computes the same scalar operations in the same order: the oracle is
its bits (and it is checked against numpy in test_elemwise_codegen.py)."""
import dataclasses

import numpy as np
import pytest

from vmc.thunks.cgen import KernelSpec, build_kernels, elemwise
from vmc.thunks.cgen.caller import call

FLOATS, INTS = ("float64", "float32"), ("int32", "int64")


def random_spec(seed, n_ops=170, inplace=False):
    """A body of n_ops ops; inputs i0 (float64 (rows, cols)), i1 (float32, one value
    per row), i2 (int32 (rows, cols)); outputs: the last float, a value from early on,
    a bool, the constant c0 and the input i2."""
    rng = np.random.default_rng(seed)
    vals = [("i0", "float64"), ("i1", "float32"), ("i2", "int32")]
    body = []

    def pick(kinds, recent=True):
        pool = [v for v in vals if v[1] in kinds]
        if recent and rng.random() < 0.8:
            pool = pool[-6:]
        return pool[rng.integers(len(pool))]

    for m in range(n_ops):
        name = f"t{m}"
        r = rng.random()
        if r < 0.15:                                  # a costly op
            a = pick(FLOATS)
            body.append((name, "tanh", (a[0],), a[1]))
        elif r < 0.25:                                # a cast between kinds
            a = pick(FLOATS + INTS)
            to = rng.choice([d for d in FLOATS + INTS if d != a[1]])
            if a[1] in FLOATS and to in INTS:         # keep it in range first
                t = f"{name}a"
                body.append((t, "tanh", (a[0],), a[1]))
                vals.append((t, a[1]))
                a = (t, a[1])
            body.append((name, "cast", (a[0],), str(to)))
        elif r < 0.32:                                # a bool, then a switch on it
            a, b = pick(FLOATS), pick(FLOATS)
            a_t = f"{name}c"
            body.append((a_t, "cast", (b[0],), a[1]))
            body.append((f"{name}b", "lt", (a[0], a_t), "bool"))
            vals.append((f"{name}b", "bool"))
            body.append((name, "switch", (f"{name}b", a[0], a_t), a[1]))
        else:                                         # add, mul, sub, max of one dtype
            a = pick(FLOATS + INTS, recent=rng.random() < 0.9)
            b = pick((a[1],)) if any(v[1] == a[1] for v in vals[-6:]) else a
            op = rng.choice(["add", "sub", "mul", "maximum"] if a[1] in FLOATS
                            else ["add", "sub", "maximum"])
            if op == "mul":
                b = ("c0", "float64") if a[1] == "float64" else a
            body.append((name, str(op), (a[0], b[0]), a[1]))
        vals.append((name, body[-1][3]))
    last_f = [v for v in vals if v[1] in FLOATS][-1]
    early = vals[8]
    boolean = next((v for v in vals if v[1] == "bool"), None)
    outputs = [(last_f[0], "float64"), (early[0], early[1]), ("c0", "float64"), ("i2", "int32")]
    if boolean:
        outputs.append((boolean[0], "bool"))
    spec = KernelSpec(
        inputs=(("float64", (False, False)), ("float32", (False, True)), ("int32", (False, False))),
        body=tuple(body), constants=(("c0", 0.5, "float64"),), outputs=tuple(outputs))
    if inplace:
        spec = dataclasses.replace(spec, outputs=spec.outputs[:1], inplace=((0, 0),))
    return spec


def _inputs(rows, cols, seed, layout):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols * 2 if layout == "strided" else cols))
    i = rng.integers(-3, 4, x.shape).astype(np.int32)
    if layout == "strided":
        x, i = x[:, ::2], i[:, ::2]
    r = rng.standard_normal((rows, 1)).astype(np.float32)
    return x, r, i


def _run_tiers(spec, args, monkeypatch):
    """Outputs of the row loop, tier 1 and tier 2."""
    n_out = len(spec.outputs)
    out = {}
    for limit, tier in ((10 ** 9, "row"), (1, 1), (1, 2)):
        monkeypatch.setattr(elemwise, "BLOCK_MIN_OPS", limit)
        thunk, = build_kernels([spec], tier=None if tier == "row" else tier)
        out[tier] = call(thunk, *[a.copy() for a in args], n_out=n_out)
    return out


def _same_bits(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    assert a.tobytes() == b.tobytes(), what


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape,layout", [((3, 37), "contiguous"), ((2, 700), "contiguous"),
                                          ((5, 33), "strided"), ((1, 16), "contiguous"),
                                          ((4, 0), "contiguous")])
def test_segments_give_the_row_loops_bits(seed, shape, layout, monkeypatch):
    spec = random_spec(seed)
    args = _inputs(*shape, seed, layout)
    out = _run_tiers(spec, args, monkeypatch)
    for tier in (1, 2):
        for q, (a, b) in enumerate(zip(out["row"], out[tier])):
            _same_bits(a, b, f"tier {tier}, output {q} ({spec.outputs[q][0]})")
    assert np.array_equal(out[2][3], args[2])             # an input as an output
    assert np.all(out[2][2] == 0.5)                        # a constant as an output


def test_many_long_lived_values_shrink_the_block(monkeypatch):
    # 60 tanh of the input, all summed at the end: 60 slots live across the segments
    body, names = [], []
    for k in range(60):
        body.append((f"a{k}", "mul", ("i0", f"c{k % 3}"), "float64"))
        body.append((f"t{k}", "tanh", (f"a{k}",), "float64"))
        names.append(f"t{k}")
    acc = names[0]
    for k, nm in enumerate(names[1:]):
        body.append((f"s{k}", "add", (acc, nm), "float64"))
        acc = f"s{k}"
    spec = KernelSpec(inputs=(("float64", (False,)),), body=tuple(body),
                      constants=tuple((f"c{k}", 0.1 * (k + 1), "float64") for k in range(3)),
                      outputs=((acc, "float64"),))
    nm = elemwise._Names(spec)
    from vmc.thunks.cgen import segments
    _, blk = segments.segment_source("k", spec, nm)
    assert blk < segments.MAX_BLOCK
    x = np.random.default_rng(5).standard_normal(1000)
    out = _run_tiers(spec, (x,), monkeypatch)
    _same_bits(out["row"][0], out[2][0], "sum of tanh")
    want = sum(np.tanh(x * (0.1 * (k % 3 + 1))) for k in range(60))
    np.testing.assert_allclose(out[2][0], want, rtol=1e-12)


@pytest.mark.parametrize("tier", [1, 2])
def test_in_place_random_body(tier, monkeypatch):
    spec = random_spec(7, inplace=True)
    monkeypatch.setattr(elemwise, "BLOCK_MIN_OPS", 1)
    x, r, i = _inputs(3, 300, 7, "contiguous")
    want = call(build_kernels([spec], tier=3 - tier)[0], x.copy(), r, i)[0]
    xc = x.copy()
    got = call(build_kernels([spec], tier=tier)[0], xc, r, i)[0]
    assert got is xc
    _same_bits(got, want, "in place")
