"""B. Elementwise throughput on long vectors, float64 and float32.

Cases: ``exp(-x*x)*y + tanh(z)*0.5`` (compute-bound: two transcendentals) and
``x*y + z*0.5`` (memory-bound), 10M elements (1M with --quick); and one call of the 999-op
chain of E (``*x``, ``+0.1``, ``tanh``, ``-x`` cycling) on float64[1000]: one kernel too big
for GCC to inline, so vmc runs it in vectorized blocks. ``np.copyto`` of one such
vector is the bandwidth reference, a baseline row timed in the same rounds as each case's
impls: ``GB/s`` counts the bytes an expression must move (three inputs read, one output
written), ``of copy`` divides that by the baseline's GB/s (bytes read and written). Every impl
allocates its output, as a call returning a new array does.
"""
from __future__ import annotations

import numpy as np

from bench import models
from bench.harness import Case, Impl, Runner
from bench.impls import all_elementwise_impls

TITLE = "elementwise throughput (lower time is better)"
BLURB = ("vmc's targets (issue 4): `exp(-x*x)*y + tanh(z)*0.5` at most 0.8x JAX's time in "
         "float64 and float32; `x*y + z*0.5` in float64 at least 0.9x of np.copyto's bandwidth.")
COLUMNS = ("GB/s", "of copy")
DTYPES = ("float64", "float32")
CHAIN_OPS, CHAIN_N = 999, 1000
COPY = "np.copyto (baseline)"


def size(cfg) -> int:
    return 1_000_000 if cfg.quick else 10_000_000


def _inputs(n: int, dtype: str) -> list:
    rng = np.random.default_rng(1)
    return [rng.standard_normal(n).astype(dtype) for _ in range(3)]


def cases(cfg) -> list:
    n = size(cfg)
    out = []
    for dt in DTYPES:
        x, y, z = _inputs(n, dt)
        item = np.dtype(dt).itemsize
        half = {"half": np.asarray(0.5, dtype=dt)}
        gauss = lambda m, x, y, z: models.gauss_tanh(x, y, z, m.exp, m.tanh)  # noqa: E731
        axpy = lambda m, x, y, z: models.axpy(x, y, z)                         # noqa: E731
        tag = f"{dt} n={n:.0e}".replace("e+0", "e")
        copy = copy_baseline(x)
        out.append(Case(f"exp(-x*x)*y+tanh(z)*0.5 {tag}",
                        lambda x=x, y=y, z=z, g=gauss: g(np, x, y, z),
                        all_elementwise_impls(gauss, [x, y, z], ["x", "y", "z"],
                                              "exp(-x*x)*y + tanh(z)*half", half) + [copy],
                        meta={"bytes": 4 * n * item, "copy_bytes": 2 * n * item}))
        out.append(Case(f"x*y+z*0.5 {tag}", lambda x=x, y=y, z=z, a=axpy: a(np, x, y, z),
                        all_elementwise_impls(axpy, [x, y, z], ["x", "y", "z"],
                                              "x*y + z*half", half) + [copy],
                        meta={"bytes": 4 * n * item, "copy_bytes": 2 * n * item}))
    x = np.random.default_rng(3).standard_normal(CHAIN_N)
    chain = lambda m, x: models.chain(x, CHAIN_OPS, m.tanh)                  # noqa: E731
    out.append(Case(f"{CHAIN_OPS}-op chain float64 n={CHAIN_N}", lambda: chain(np, x),
                    all_elementwise_impls(chain, [x], ["x"], None)))
    return out


def copy_baseline(x: np.ndarray) -> Impl:
    """The bandwidth reference: numpy's copyto of ``x`` into a preallocated array."""
    def build():
        dst = np.empty_like(x)
        return Runner(np.copyto, (dst, x), result=lambda _: dst)
    return Impl(COPY, build, baseline=True)


def derive(rows) -> None:
    """GB/s from the bytes each row moves; ``of copy``: over the case's copy baseline's GB/s."""
    copy_gbs = {r.case: r.meta["copy_bytes"] / r.median / 1e9 for r in rows
                if r.ok and r.impl == COPY}
    for r in rows:
        if not r.ok or "bytes" not in r.meta:
            continue
        gbs = r.meta["copy_bytes" if r.impl == COPY else "bytes"] / r.median / 1e9
        r.cols["GB/s"] = f"{gbs:.2f}"
        ref = copy_gbs.get(r.case)
        if ref:
            r.cols["of copy"] = f"{gbs / ref:.2f}"
