"""The second tier of a long fused kernel: its body cut into segments, each one
loop over a block of elements that stays in L1.

Why: the block form (``elemwise._block_loops``, the first tier) runs the whole body
on one vector of BLOCK_LANES elements before the next, so every op waits for the
one before it. A 999-op chain with 250 tanh is latency-bound there: each tanh's
polynomial is a chain of dependent FMAs, and nothing else is in flight. Here a
segment holds at most one costly op (a call: tanh, exp, an integer division...)
and runs as a loop over a block of up to ``block`` elements, so the iterations
(independent vectors) overlap in the CPU's out-of-order window. Values that cross
segments live in block-sized slots (stack arrays, reused once dead); a block of
slots stays within SLOT_BYTES, in L1. Each element still goes through the same
scalar operations in the same order, so the bits are the block form's and the
row loop's. Measured on the 999-op chain (float64[1000], one thread, AVX-512):
about 12x faster than the block form.

It costs more to compile (one loop per segment: about 0.35 s of gcc for that chain
against 0.13 s), so ``build_kernels`` compiles it in the background while the
block form runs the first calls (``tiers.py``), unless ``config.tiered_compile``
is off.

Contract of the generated ``{k}_sblk(n, A..., B...)``: every input a pointer to n
contiguous elements (row scalars are spread first), n a multiple of LANE_GROUP
(callers pad the tail with its first element, a value the ops take) and at most
the block; outputs are written after every input was read, so an output may alias
an input (in place).
"""
from __future__ import annotations

import re

import numpy as np

from . import scalar_c

SLOT_BYTES = 16 * 1024      # the slots of one block
MAX_BLOCK, MIN_BLOCK = 256, 32
MAX_SEGMENT_OPS = 24        # cheap ops per segment
LANE_GROUP = 16             # n of a block call is a multiple of this (whole vectors)
SEGMENTS_PER_FN = 32        # loops per C function (gcc's time grows with function size)
_CALL = re.compile(r"\b[A-Za-z_]\w*\(")


def _costly(expr: str) -> bool:
    """Whether an op's C calls a function (vmc_math, libm, integer helpers)."""
    return bool(_CALL.search(expr))


def _segments(spec, nm):
    """The body cut into segments: lists of (name, C expression over C names)."""
    segs, cur, costly = [], [], False
    for name, op, args, _ in spec.body:
        expr, _ = scalar_c.expression(op, [nm.c[a] for a in args],
                                      tuple(nm.dtype[a] for a in args), nm.dtype[name])
        heavy = _costly(expr)
        if cur and ((heavy and costly) or len(cur) >= MAX_SEGMENT_OPS):
            segs.append(cur)
            cur, costly = [], False
        cur.append((name, expr, args))
        costly |= heavy
    if cur:
        segs.append(cur)
    return segs


class _Slots:
    """Block-sized stack arrays for the values that cross segments, per C type,
    reused once their value is dead."""

    def __init__(self):
        self.types, self.free, self.of = [], {}, {}

    def take(self, name, ctype):
        pool = self.free.get(ctype)
        s = pool.pop() if pool else None
        if s is None:
            s = len(self.types)
            self.types.append(ctype)
        self.of[name] = s
        return s

    def release(self, name):
        s = self.of[name]
        self.free.setdefault(self.types[s], []).append(s)


def _plan(spec, nm, segs):
    """Per segment: (loads, lines, stores) of its loop body, and the slots."""
    seg_of = {name: s for s, seg in enumerate(segs) for name, _, _ in seg}
    last = {}                      # value -> last segment reading it
    for s, seg in enumerate(segs):
        for _, _, args in seg:
            for a in args:
                last[a] = s
    outputs = {name for name, _ in spec.outputs}
    for name in outputs:
        last[name] = len(segs)     # read by the output loop
    slots, plans = _Slots(), []
    for s, seg in enumerate(segs):
        loads, lines, stores, seen = [], [], [], set()
        for name, expr, args in seg:
            for a in args:
                if a in seen or a in seg_of and seg_of[a] == s:
                    continue
                seen.add(a)
                if a in slots.of:
                    loads.append(f"const {nm.ctype(a)} {nm.c[a]} = S{slots.of[a]}[i];")
                elif a.startswith("i") and a[1:].isdigit():
                    loads.append(f"const {nm.ctype(a)} {nm.c[a]} = A{a[1:]}[i];")
            lines.append(f"const {nm.ctype(name)} {nm.c[name]} = {expr};")
        # slots read for the last time here are free for this segment's stores:
        # every load of an iteration comes before its stores
        for a in seen:
            if a in slots.of and last[a] == s:
                slots.release(a)
        for name, _, _ in seg:
            if last.get(name, s) > s:
                stores.append(f"S{slots.take(name, nm.ctype(name))}[i] = {nm.c[name]};")
        plans.append((loads, lines, stores))
    return plans, slots


def block_size(slots) -> int:
    """Elements per block: as many as fit SLOT_BYTES, a power of two."""
    per = sum(scalar_c_size(t) for t in slots.types) or 1
    b = MAX_BLOCK
    while b > MIN_BLOCK and b * per > SLOT_BYTES:
        b //= 2
    return b


def scalar_c_size(ctype: str) -> int:
    return next(np.dtype(d).itemsize for d, t in scalar_c.C_TYPES.items() if t == ctype)


def segment_source(k: str, spec, nm) -> tuple[str, int]:
    """``{k}_sblk`` and its segment functions; and the block size."""
    segs = _segments(spec, nm)
    plans, slots = _plan(spec, nm, segs)
    blk = block_size(slots)
    nin = len(spec.inputs)
    used_consts = {c for c, _, _ in spec.constants
                   if any(re.search(rf"\b{nm.c[c]}\b", e) for seg in segs for _, e, _ in seg)}
    consts = "".join(f"    const {nm.ctype(c)} {nm.c[c]} = {scalar_c.literal(v, dt)};\n"
                     for c, v, dt in spec.constants if c in used_consts)
    params = ([f"const {nm.ctype(f'i{j}')} *restrict A{j}" for j in range(nin)]
              + [f"{t} *restrict S{s}" for s, t in enumerate(slots.types)])
    args = [f"A{j}" for j in range(nin)] + [f"S{s}" for s in range(len(slots.types))]
    src, calls = "", []
    for f0 in range(0, len(plans), SEGMENTS_PER_FN):
        fname = f"{k}_g{f0 // SEGMENTS_PER_FN}"
        body = "".join("    for (npy_intp i = 0; i < n; i++) {\n"
                       + "".join(f"        {x}\n" for x in loads + lines + stores) + "    }\n"
                       for loads, lines, stores in plans[f0:f0 + SEGMENTS_PER_FN])
        # n is a multiple of LANE_GROUP: saying so spares gcc the scalar epilogues
        src += (f"__attribute__((noinline)) static void {fname}(npy_intp n, "
                f"{', '.join(params)}) {{\n{consts}    n &= ~(npy_intp){LANE_GROUP - 1};\n"
                f"{body}}}\n")
        calls.append(f"    {fname}(n, {', '.join(args)});\n")
    outs = [scalar_c.C_TYPES[np.dtype(dt).name] for _, dt in spec.outputs]
    src += (f"static void {k}_sblk(npy_intp n, "
            + ", ".join([f"const {nm.ctype(f'i{j}')} *restrict A{j}" for j in range(nin)]
                        + [f"{t} *restrict B{q}" for q, t in enumerate(outs)]) + ") {\n")
    src += "".join(f"    {t} S{s}[{blk}] __attribute__((aligned(64)));\n"
                   for s, t in enumerate(slots.types))
    src += "".join(calls)
    src += "    for (npy_intp i = 0; i < n; i++) {\n" + "".join(
        f"        const {nm.ctype(c)} {nm.c[c]} = {scalar_c.literal(v, dt)};\n"
        for c, v, dt in spec.constants if c in {name for name, _ in spec.outputs})
    for q, (name, dt) in enumerate(spec.outputs):
        if name in slots.of:
            val = f"S{slots.of[name]}[i]"
        elif name.startswith("i") and name[1:].isdigit():
            val = f"A{name[1:]}[i]"
        else:
            val = nm.c[name]
        src += f"        B{q}[i] = {scalar_c.convert(val, nm.dtype[name], np.dtype(dt).name)};\n"
    return src + "    }\n}\n", blk


def segment_loops(k, spec, nm, modes, row_fn) -> str:
    """The segments, and the row and strided loops that feed ``{k}_sblk`` whole
    blocks (the tail and strided data through padded buffers)."""
    src, blk = segment_source(k, spec, nm)
    nin, nq = len(spec.inputs), range(len(spec.outputs))
    ins = [nm.ctype(f"i{j}") for j in range(nin)]
    outs = [scalar_c.C_TYPES[np.dtype(dt).name] for _, dt in spec.outputs]
    bufs = ("".join(f"        {t} A{j}[{blk}] __attribute__((aligned(64)));\n"
                    for j, t in enumerate(ins))
            + "".join(f"        {t} B{q}[{blk}] __attribute__((aligned(64)));\n"
                      for q, t in enumerate(outs)))
    # the row: row scalars spread over a block once; whole blocks in place
    body = "".join(f"    {t} R{j}[{blk}];\n    for (int l = 0; l < {blk}; l++) R{j}[l] = X{j};\n"
                   for j, t in enumerate(ins) if modes[j])
    full = [f"R{j}" if modes[j] else f"P{j} + i" for j in range(nin)] + [f"Q{q} + i" for q in nq]
    tail = [f"R{j}" if modes[j] else f"A{j}" for j in range(nin)] + [f"B{q}" for q in nq]
    body += (f"    npy_intp i = 0;\n    for (; i + {blk} <= n; i += {blk}) "
             f"{k}_sblk({blk}, {', '.join(full)});\n"
             f"    if (i < n) {{\n        const npy_intp m = n - i, "
             f"mg = (m + {LANE_GROUP - 1}) & ~(npy_intp){LANE_GROUP - 1};\n" + bufs)
    body += "".join(f"        for (npy_intp l = 0; l < mg; l++) A{j}[l] = P{j}[i + (l < m ? l : 0)];\n"
                    for j in range(nin) if not modes[j])
    body += f"        {k}_sblk(mg, {', '.join(tail)});\n"
    body += "".join(f"        for (npy_intp l = 0; l < m; l++) Q{q}[i + l] = B{q}[l];\n" for q in nq)
    src += row_fn(k, "row", spec, nm, modes, body + "    }\n")
    # strided: gather a block, run it, scatter
    src += (f"static void {k}_strided(npy_intp n, char **p, const npy_intp *s) {{\n"
            f"    for (npy_intp i = 0; i < n; i += {blk}) {{\n"
            f"        const npy_intp m = n - i < {blk} ? n - i : {blk}, "
            f"mg = (m + {LANE_GROUP - 1}) & ~(npy_intp){LANE_GROUP - 1};\n" + bufs)
    src += "".join(f"        for (npy_intp l = 0; l < mg; l++) A{j}[l] = "
                   f"*(const {t} *)(p[{j}] + (i + (l < m ? l : 0)) * s[{j}]);\n"
                   for j, t in enumerate(ins))
    src += f"        {k}_sblk(mg, {', '.join([f'A{j}' for j in range(nin)] + [f'B{q}' for q in nq])});\n"
    src += "".join(f"        for (npy_intp l = 0; l < m; l++) "
                   f"*({t} *)(p[{nin + q}] + (i + l) * s[{nin + q}]) = B{q}[l];\n"
                   for q, t in enumerate(outs))
    return src + "    }\n}\n"
