"""Generated C for fused elementwise kernels.

The input is a neutral description, ``KernelSpec``; ``build_kernels(specs)``
generates one C kernel per spec, compiles them together into one plain C
library through the compile cache, and returns ``CThunk``s for the VM. This
module knows nothing of graphs or ops: the caller (the fusion pass) lowers a
fused group to a KernelSpec, and falls back to numpy when this raises
NotImplementedError (an op or dtype the scalar table lacks).

Per kernel, only the loops are generated (see vmc_elemwise.h for the shared
driver): the expression as two inline functions (``exact``, and ``fast`` when
an op has a vectorizable form that needs a fix-up pass), a row loop that GCC
vectorizes (inputs contiguous, or scalar per row), a strided loop, and for
fused reductions an accumulating row loop, a lane-parallel row reduction and
a strided one.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import scalar_c, segments, tiers
from .cache import cached_library, compiledir
from .cache import directory as cache_directory
from .headers import headers_digest

REUSE_MAX_BYTES = 256 * 1024   # outputs up to this size are kept in ctx for reuse
# A module with at least this many calls of vmc_math.h's functions calls them
# out of line (VMC_OUTLINE_MATH): a 999-op chain with 250 tanh compiles in 0.19 s
# instead of 0.36 s; inlined, exp(-x*x)*y + tanh(z)*0.5 runs ~30% faster, which
# is what a small kernel run on large arrays wants.
OUTLINE_MIN_CALLS = 64
_MATH_FNS = frozenset(re.findall(r"^VMC_MATHFN (?:double|float) (\w+)\(",
                                 (Path(__file__).parent / "vmc_math.h").read_text(), re.M))
_CALL = re.compile(r"\b(vmc_\w+)\(")
# A kernel of more ops than about 130 is too big for GCC (12) to inline its
# expression into the row loop, which then runs one element at a time (a chain
# of *x, +0.1, tanh, -r: 1.2 ns per element and op up to 128 ops, 9.4 ns from
# 144, with math inlined or not). Such a kernel runs blocks of BLOCK_LANES
# elements through one vectorized function instead (the tail and strided data
# padded into a block), compiled in a library of its own at -O1 with loop
# vectorization and vmc_math's vector clones: 3.4 ns per element and op. A
# 999-op chain on float64[1000]: 10 ms -> 3.9 ms, gcc 0.18 -> 0.21 s (-O3: 0.28 s).
BLOCK_MIN_OPS = 136
BLOCK_LANES = 8
BLOCK_FLAGS = ("-O1", "-ftree-loop-vectorize")
LANES = 8                      # partial accumulators of a row reduction
RED_BLOCK = 2048               # elements summed into the lanes before they fold
MAX_OPERANDS, MAX_NDIM = 64, 32  # must match VMC_MAXOPS / VMC_MAXDIM


@dataclass(frozen=True)
class KernelSpec:
    """A fused elementwise group, as plain hashable data.

    inputs:    ((dtype, broadcastable flags per dim), ...); all the same ndim.
               Referred to in the body as "i0", "i1", ...
    body:      ((name, scalar op, (arg names...), result dtype), ...) in order.
    constants: ((name, value, dtype), ...).
    outputs:   ((name, dtype), ...): values of the body (or inputs, constants).
    inplace:   ((output index, input index), ...): the output may be written
               into that input's buffer (the caller guarantees it dies here).
    reduce:    None, or (op, axes, keepdims) with op "add" | "maximum" | "minimum" (the scalar ops' names) and
               keepdims False: every output is reduced over ``axes`` in the
               same pass.
    """
    inputs: tuple
    body: tuple
    constants: tuple = ()
    outputs: tuple = ()
    inplace: tuple = ()
    reduce: tuple | None = None

    @property
    def ndim(self) -> int:
        return len(self.inputs[0][1]) if self.inputs else 0


# ------------------------------------------------------------------ naming

class _Names:
    """Spec names -> C identifiers, dtypes and C types."""

    def __init__(self, spec: KernelSpec):
        self.c, self.dtype = {}, {}
        for j, (dt, _) in enumerate(spec.inputs):
            self._add(f"i{j}", f"in{j}", dt)
        for m, (name, _, dt) in enumerate(spec.constants):
            self._add(name, f"c{m}", dt)
        for m, (name, op, args, dt) in enumerate(spec.body):
            for a in args:
                if a not in self.c:
                    raise ValueError(f"kernel body: {name} = {op}{tuple(args)} uses {a!r} "
                                     "before it is defined")
            self._add(name, f"t{m}", dt)
        for name, _ in spec.outputs:
            if name not in self.c:
                raise ValueError(f"kernel output {name!r} is not defined by the body")

    def _add(self, name, cname, dtype):
        dt = np.dtype(dtype).name
        if dt not in scalar_c.C_TYPES:
            raise NotImplementedError(f"dtype {dt}")
        if name in self.c:
            raise ValueError(f"kernel name {name!r} defined twice")
        self.c[name], self.dtype[name] = cname, dt

    def ctype(self, name):
        return scalar_c.C_TYPES[self.dtype[name]]


def _label(spec: KernelSpec) -> str:
    """The expression in words, for error messages: add(exp(mul(i0, i1)), c0)."""
    expr = {name: name for name in [f"i{j}" for j in range(len(spec.inputs))]}
    expr.update({c[0]: c[0] for c in spec.constants})
    for name, op, args, _ in spec.body:
        expr[name] = f"{op}({', '.join(expr[a] for a in args)})"
        if len(expr[name]) > 160:
            expr[name] = f"{op}(...)"
    text = ", ".join(expr[o] for o, _ in spec.outputs)
    if spec.reduce:
        text = f"{spec.reduce[0]}_over{tuple(spec.reduce[1])}({text})"
    return text[:300]


# ---------------------------------------------------------- code generation

def _body_fn(k: str, spec: KernelSpec, nm: _Names, variant: str,
             attrs: str = "") -> tuple[str, bool]:
    """static inline void {k}_{variant}(inputs..., outputs*[, int *big])."""
    params = [f"{nm.ctype(f'i{j}')} in{j}" for j in range(len(spec.inputs))]
    params += [f"{scalar_c.C_TYPES[np.dtype(dt).name]} *o{q}" for q, (_, dt) in enumerate(spec.outputs)]
    lines, any_big = [], False
    for name, value, dt in spec.constants:
        lines.append(f"const {nm.ctype(name)} {nm.c[name]} = {scalar_c.literal(value, dt)};")
    for name, op, args, dt in spec.body:
        expr, big = scalar_c.expression(op, [nm.c[a] for a in args],
                                        tuple(nm.dtype[a] for a in args),
                                        nm.dtype[name], variant)
        lines.append(f"const {nm.ctype(name)} {nm.c[name]} = {expr};")
        if big:
            lines.append(f"*big |= {big};")
            any_big = True
    for q, (name, dt) in enumerate(spec.outputs):
        lines.append(f"*o{q} = {scalar_c.convert(nm.c[name], nm.dtype[name], np.dtype(dt).name)};")
    if variant == "fast":
        params.append("int *big")
    src = (f"static inline {attrs}void {k}_{variant}({', '.join(params)}) {{\n    "
           + "\n    ".join(lines) + "\n}\n")
    return src, any_big


def _row_modes(spec: KernelSpec):
    """Per input: True when it is a scalar within a row (last dim broadcastable)."""
    return [spec.ndim == 0 or bool(flags[-1]) for _, flags in spec.inputs]


def _row_params(spec, nm, modes):
    """(parameter, argument from p[]) pairs of a row loop: restrict pointers
    (GCC then vectorizes without alias checks that an in-place call would
    fail) or, for row-scalar inputs, the value itself."""
    out = []
    for j in range(len(spec.inputs)):
        t = nm.ctype(f"i{j}")
        out.append((f"const {t} X{j}", f"*(const {t} *)p[{j}]") if modes[j] else
                   (f"const {t} *restrict P{j}", f"(const {t} *)p[{j}]"))
    nin = len(spec.inputs)
    for q, (_, dt) in enumerate(spec.outputs):
        t = scalar_c.C_TYPES[np.dtype(dt).name]
        out.append((f"{t} *restrict Q{q}", f"({t} *)p[{nin + q}]"))
    return out


def _row_fn(k, name, spec, nm, modes, body):
    """A row loop ``{k}_{name}(n, p)`` whose work is ``body`` over the params."""
    params = _row_params(spec, nm, modes)
    return (f"__attribute__((noinline)) static void {k}_{name}_i(npy_intp n, "
            f"{', '.join(d for d, _ in params)}) {{\n{body}}}\n"
            f"static void {k}_{name}(npy_intp n, char **p) {{\n"
            f"    {k}_{name}_i(n, {', '.join(a for _, a in params)});\n}}\n")


def _args(spec, nm, modes, idx, strided):
    a = []
    for j in range(len(spec.inputs)):
        t = nm.ctype(f"i{j}")
        if strided:
            a.append(f"*(const {t} *)(p[{j}] + ({idx}) * s[{j}])")
        else:
            a.append(f"X{j}" if modes[j] else f"P{j}[{idx}]")
    return a


def _out_types(spec):
    return [scalar_c.C_TYPES[np.dtype(dt).name] for _, dt in spec.outputs]


def _row_loop(k, spec, nm, modes, has_big):
    """The vectorizable row; with a fix-up pass per block when an op needs it.

    The fix-up block computes into small buffers and copies them out, so a
    recomputed lane still reads its inputs when the output aliases one."""
    outs = _out_types(spec)
    if not has_big:
        call = ", ".join(_args(spec, nm, modes, "i", False) + [f"Q{q} + i" for q in range(len(outs))])
        return _row_fn(k, "row", spec, nm, modes,
                       f"    for (npy_intp i = 0; i < n; i++) {k}_exact({call});\n")
    tptr = [f"T{q} + (i - b)" for q in range(len(outs))]
    fast = ", ".join(_args(spec, nm, modes, "i", False) + tptr + ["&big"])
    exact = ", ".join(_args(spec, nm, modes, "i", False) + tptr)
    body = (
        "    for (npy_intp b = 0; b < n; b += VMC_BLK) {\n"
        "        const npy_intp e = n - b < VMC_BLK ? n : b + VMC_BLK;\n"
        + "".join(f"        {t} T{q}[VMC_BLK];\n" for q, t in enumerate(outs))
        + "        int big = 0;\n"
        f"        for (npy_intp i = b; i < e; i++) {k}_fast({fast});\n"
        f"        if (big) for (npy_intp i = b; i < e; i++) {k}_exact({exact});\n"
        + "".join(f"        memcpy(Q{q} + b, T{q}, (size_t)(e - b) * sizeof({t}));\n"
                  for q, t in enumerate(outs))
        + "    }\n")
    return _row_fn(k, "row", spec, nm, modes, body)


def _strided_loop(k, spec, nm, suffix="strided", acc=None):
    """Any strides; with ``acc`` (reduce) the outputs accumulate: o = acc(o, v)."""
    outs, nin = _out_types(spec), len(spec.inputs)
    src = f"static void {k}_{suffix}(npy_intp n, char **p, const npy_intp *s) {{\n"
    src += "    for (npy_intp i = 0; i < n; i++) {\n"
    src += "".join(f"        {t} v{q};\n" for q, t in enumerate(outs))
    vals = [f"&v{q}" for q in range(len(outs))]
    src += f"        {k}_exact({', '.join(_args(spec, nm, None, 'i', True) + vals)});\n"
    for q, t in enumerate(outs):
        dst = f"*({t} *)(p[{nin + q}] + i * s[{nin + q}])"
        src += f"        {dst} = {acc[q](dst, f'v{q}') if acc else f'v{q}'};\n"
    return src + "    }\n}\n"


def block_form(spec: KernelSpec) -> bool:
    """Whether the kernel runs as vectorized blocks (see BLOCK_MIN_OPS)."""
    return spec.reduce is None and len(spec.body) >= BLOCK_MIN_OPS


def _block_loops(k, spec, nm, modes):
    """``{k}_blk`` runs BLOCK_LANES elements from contiguous buffers; the row
    loop gives it the data's blocks, then the tail padded with its first
    element (a value the op takes: no division by a made-up zero); the strided
    loop gathers blocks. Row-scalar inputs are spread over a block once."""
    L, nin = BLOCK_LANES, len(spec.inputs)
    ins, outs = [nm.ctype(f"i{j}") for j in range(nin)], _out_types(spec)
    params = ([f"const {t} *restrict A{j}" for j, t in enumerate(ins)]
              + [f"{t} *restrict B{q}" for q, t in enumerate(outs)])
    call = ", ".join([f"A{j}[l]" for j in range(nin)] + [f"B{q} + l" for q in range(len(outs))])
    src = (f"__attribute__((noinline)) static void {k}_blk({', '.join(params)}) {{\n"
           f"    for (int l = 0; l < {L}; l++) {k}_exact({call});\n}}\n")
    bufs = ("".join(f"        {t} A{j}[{L}];\n" for j, t in enumerate(ins))
            + "".join(f"        {t} B{q}[{L}];\n" for q, t in enumerate(outs)))
    return (src + _row_fn(k, "row", spec, nm, modes, _block_row(k, ins, outs, modes, bufs))
            + _block_strided(k, ins, outs, bufs))


def _block_row(k, ins, outs, modes, bufs):
    """The row loop's body: pointer inputs are passed in place, row scalars as
    a block of copies; the tail goes through the buffers."""
    L, nin, nq = BLOCK_LANES, len(ins), range(len(outs))
    body = "".join(f"    {t} S{j}[{L}];\n    for (int l = 0; l < {L}; l++) S{j}[l] = X{j};\n"
                   for j, t in enumerate(ins) if modes[j])
    full = [f"S{j}" if modes[j] else f"P{j} + i" for j in range(nin)] + [f"Q{q} + i" for q in nq]
    tail = [f"S{j}" if modes[j] else f"A{j}" for j in range(nin)] + [f"B{q}" for q in nq]
    body += (f"    npy_intp i = 0;\n    for (; i + {L} <= n; i += {L}) "
             f"{k}_blk({', '.join(full)});\n    if (i < n) {{\n" + bufs)
    body += "".join(f"        for (int l = 0; l < {L}; l++) "
                    f"A{j}[l] = P{j}[i + l < n ? i + l : i];\n" for j in range(nin) if not modes[j])
    body += f"        {k}_blk({', '.join(tail)});\n"
    body += "".join(f"        for (int l = 0; i + l < n; l++) Q{q}[i + l] = B{q}[l];\n" for q in nq)
    return body + "    }\n"


def _block_strided(k, ins, outs, bufs):
    """The strided loop: gather a block, run it, scatter what is inside ``n``."""
    L, nin = BLOCK_LANES, len(ins)
    args = [f"A{j}" for j in range(nin)] + [f"B{q}" for q in range(len(outs))]
    src = (f"static void {k}_strided(npy_intp n, char **p, const npy_intp *s) {{\n"
           f"    for (npy_intp i = 0; i < n; i += {L}) {{\n" + bufs
           + f"        for (int l = 0; l < {L}; l++) {{\n"
           "            const npy_intp e = i + l < n ? i + l : i;\n")
    src += "".join(f"            A{j}[l] = *(const {t} *)(p[{j}] + e * s[{j}]);\n"
                   for j, t in enumerate(ins))
    src += f"        }}\n        {k}_blk({', '.join(args)});\n"
    src += "".join(f"        for (int l = 0; l < {L} && i + l < n; l++) "
                   f"*({t} *)(p[{nin + q}] + (i + l) * s[{nin + q}]) = B{q}[l];\n"
                   for q, t in enumerate(outs))
    return src + "    }\n}\n"


def _reduce_loops(k, spec, nm, modes):
    """racc (accumulate into contiguous output rows), rrow (a row into each
    output's element, LANES partial results so it vectorizes without
    reassociating a single sum), rstrided and rinit."""
    op, outs = spec.reduce[0], _out_types(spec)
    accs, idents = [], []
    for _, dt in spec.outputs:
        acc, ident = scalar_c.reduce_templates(op, np.dtype(dt).name)
        accs.append(acc)
        idents.append(ident)
    nq = range(len(outs))
    src = _strided_loop(k, spec, nm, "rstrided", accs)
    vals = lambda ind: "".join(f"{ind}{t} v{q};\n" for q, t in enumerate(outs))
    call = lambda idx: ", ".join(_args(spec, nm, modes, idx, False) + [f"&v{q}" for q in nq])
    src += _row_fn(k, "racc", spec, nm, modes,
                   "    for (npy_intp i = 0; i < n; i++) {\n" + vals(" " * 8)
                   + f"        {k}_exact({call('i')});\n"
                   + "".join(f"        Q{q}[i] = {accs[q](f'Q{q}[i]', f'v{q}')};\n" for q in nq)
                   + "    }\n")
    body = "".join(f"    {t} tot{q} = Q{q}[0];\n" for q, t in enumerate(outs))
    body += f"    for (npy_intp b = 0; b < n; b += {RED_BLOCK}) {{\n"
    body += f"        const npy_intp e = n - b < {RED_BLOCK} ? n : b + {RED_BLOCK};\n"
    body += "".join(f"        {t} L{q}[{LANES}];\n        for (int l = 0; l < {LANES}; l++) "
                    f"L{q}[l] = {idents[q]};\n" for q, t in enumerate(outs))
    body += f"        npy_intp i = b;\n        for (; i + {LANES} <= e; i += {LANES})\n"
    body += f"            for (int l = 0; l < {LANES}; l++) {{\n" + vals(" " * 16)
    body += f"                {k}_exact({call('i + l')});\n"
    body += "".join(f"                L{q}[l] = {accs[q](f'L{q}[l]', f'v{q}')};\n" for q in nq)
    body += "            }\n        for (; i < e; i++) {\n" + vals(" " * 12)
    body += f"            {k}_exact({call('i')});\n"
    body += "".join(f"            L{q}[0] = {accs[q](f'L{q}[0]', f'v{q}')};\n" for q in nq)
    body += "        }\n"
    # The lanes go through memory before they fold: GCC 12 at -O3 fuses this loop and
    # the fold below into one vector reduction and miscompiles it for integer lanes
    # (casts through unsigned) fed by narrower inputs, at every width from SSE to
    # AVX-512 (a sum of eq(int64, int32) over 16 elements gave 3 instead of 6; see
    # tests/thunks/test_reduce_isa.py).
    body += "".join(f"        __asm__(\"\" : \"+m\"(L{q}));\n" for q in nq)
    for q in nq:
        level = [f"L{q}[{l}]" for l in range(LANES)]
        while len(level) > 1:   # pairwise fold of the lanes
            level = [accs[q](level[i], level[i + 1]) for i in range(0, len(level), 2)]
        body += f"        tot{q} = {accs[q](f'tot{q}', level[0])};\n"
    body += "    }\n" + "".join(f"    Q{q}[0] = tot{q};\n" for q in nq)
    src += _row_fn(k, "rrow", spec, nm, modes, body)
    src += f"static void {k}_rinit(char **o, npy_intp n) {{\n"
    src += "".join(f"    for (npy_intp i = 0; i < n; i++) (({t} *)o[{q}])[i] = {idents[q]};\n"
                   for q, t in enumerate(outs))
    src += f"}}\nstatic void {k}_rcombine(char **o, char **p) {{\n"
    src += "".join(f"    *({t} *)o[{q}] = {accs[q](f'*({t} *)o[{q}]', f'*({t} *)p[{q}]')};\n"
                   for q, t in enumerate(outs))
    return src + "}\n"


def _c_array(ctype, name, values):
    vals = ", ".join(str(v) for v in values) or "0"
    return f"static const {ctype} {name}[] = {{{vals}}};\n"


def _validate(spec: KernelSpec):
    nd = spec.ndim
    if any(len(flags) != nd for _, flags in spec.inputs):
        raise ValueError("KernelSpec inputs must all have the same number of dims")
    if not spec.outputs:
        raise ValueError("KernelSpec has no outputs")
    if len(spec.inputs) + len(spec.outputs) > MAX_OPERANDS or nd > MAX_NDIM:
        raise NotImplementedError(f"kernel with {len(spec.inputs)} inputs, "
                                  f"{len(spec.outputs)} outputs, {nd} dims")
    if spec.reduce is not None:
        op, axes, keepdims = spec.reduce
        if op not in scalar_c.REDUCE:
            raise NotImplementedError(f"reduce {op}")
        if keepdims:
            raise NotImplementedError("reduce with keepdims=True")
        if any(not -nd <= a < nd for a in axes) or nd == 0:
            raise ValueError(f"reduce axes {axes} out of range for {nd} dims")


def kernel_source(k: str, spec: KernelSpec, reuse_max: int = REUSE_MAX_BYTES,
                  tier: int = 2) -> str:
    """The C of one kernel, a thunk named ``k`` (raises NotImplementedError); a kernel
    in block form is written as ``tier`` 1 (blocks) or 2 (segments: tiers.py)."""
    _validate(spec)
    nm = _Names(spec)
    nd = spec.ndim
    modes = _row_modes(spec)
    red = spec.reduce is not None
    if block_form(spec):
        fns = f"{k}_row, NULL, NULL, {k}_strided, NULL, NULL, NULL"
        if tier == 2:
            return (segments.segment_loops(k, spec, nm, modes, _row_fn)
                    + _desc(k, spec, set(), fns, reuse_max, 2))
        src = _body_fn(k, spec, nm, "exact", "__attribute__((always_inline)) ")[0]
        src += _block_loops(k, spec, nm, modes)
        return src + _desc(k, spec, set(), fns, reuse_max, 1)
    exact, _ = _body_fn(k, spec, nm, "exact")
    fast, has_big = _body_fn(k, spec, nm, "fast")
    src = exact + (fast if has_big and not red else "")
    if red:
        src += _reduce_loops(k, spec, nm, modes)
        axes = {a % nd for a in spec.reduce[1]}
        fns = f"NULL, {k}_racc, {k}_rrow, NULL, {k}_rstrided, {k}_rinit, {k}_rcombine"
    else:
        axes = set()
        src += _row_loop(k, spec, nm, modes, has_big) + _strided_loop(k, spec, nm)
        fns = f"{k}_row, NULL, NULL, {k}_strided, NULL, NULL, NULL"
    return src + _desc(k, spec, axes, fns, reuse_max)


def _desc(k, spec, axes, fns, reuse_max, tier=0):
    """The kernel's ``vmc_ew_desc`` (its types, flags and loops) for the table."""
    nd, nin, nout, red = spec.ndim, len(spec.inputs), len(spec.outputs), spec.reduce is not None
    src = ""
    types = lambda dts: [np.dtype(d).num for d in dts]     # numpy's typenums
    inplace = [-1] * nout
    for o, i in spec.inplace:
        inplace[o] = i
    src += _c_array("int", f"{k}_in_types", types(dt for dt, _ in spec.inputs))
    src += _c_array("npy_bool", f"{k}_bcast", [int(bool(f)) for _, fl in spec.inputs for f in fl])
    src += _c_array("int", f"{k}_out_types", types(dt for _, dt in spec.outputs))
    src += _c_array("int", f"{k}_inplace", inplace)
    src += _c_array("npy_bool", f"{k}_raxes", [int(a in axes) for a in range(nd)])
    rname = spec.reduce[0] if red else ""
    src += (f"static const vmc_ew_desc {k}_desc = {{{json.dumps(_label(spec))}, {nin}, {nout}, "
            f"{nd}, {k}_in_types, {k}_bcast, {k}_out_types, {k}_inplace, {int(red)}, "
            f"{k}_raxes, \"{rname}\", {int(reuse_max)}, {fns}, {tier}}};\n")
    return src


def _distinct(specs):
    """{spec: its index in the kernel table}, and each spec's index."""
    distinct, index = {}, []
    for s in specs:
        index.append(distinct.setdefault(s, len(distinct)))
    return distinct, index


def module_source(specs, reuse_max: int = REUSE_MAX_BYTES, tier: int = 2) -> tuple[str, list]:
    """C of a kernel library holding one kernel per distinct spec (plain C: see
    vmc_elemwise.h), long kernels as ``tier``; and each spec's index in its
    ``vmc_kernels`` table."""
    distinct, index = _distinct(specs)
    parts = [kernel_source(f"k{i}", s, reuse_max, tier) for s, i in distinct.items()]
    descs = "".join(f"&k{i}_desc, " for i in distinct.values())
    parts.append(f"VMC_KERNEL_TABLE = {{{descs}NULL}};\n")
    body = "".join(parts)
    calls = sum(1 for name in _CALL.findall(body) if name in _MATH_FNS)
    # block-form kernels are compiled at -O1, which inlines no math: they need the
    # vector clones
    long = any(block_form(s) for s in distinct)
    outline = "#define VMC_OUTLINE_MATH\n" if long or calls >= OUTLINE_MIN_CALLS else ""
    if long:
        # BLOCK_FLAGS' -O1 would leave vmc_math's polynomials as loops over their
        # coefficient tables: 2.5x slower (the 999-op chain, block form)
        return (f"{outline}{_MATH_AT_O3[0]}#include \"vmc_elemwise.h\"\n{_MATH_AT_O3[1]}{body}",
                index)
    return f"{outline}#include \"vmc_elemwise.h\"\n{body}", index


_MATH_AT_O3 = ("#if defined(__GNUC__) && !defined(__clang__)\n#pragma GCC push_options\n"
               "#pragma GCC optimize(\"O3\")\n#endif\n",
               "#if defined(__GNUC__) && !defined(__clang__)\n#pragma GCC pop_options\n#endif\n")


def build_kernels(specs: list, reuse_max_bytes: int = REUSE_MAX_BYTES,
                  name_hint: str = "elemwise", tier: int | None = None) -> list:
    """One CThunk per spec, all compiled into one library (through the cache);
    kernels in block form as ``tier`` 1 or 2, or by default as tiers.py says.

    Raises NotImplementedError(op) for an op or dtype the scalar table lacks,
    so the caller can fall back to numpy thunks; CompileError if the compiler
    rejects the source (a generator bug).
    """
    from vmc.program import CThunk

    from . import stock
    specs = list(specs)
    if not specs:
        return []
    distinct, index = _distinct(specs)
    rt = runtime()
    where = {}                  # spec -> (its library, its index there)
    if reuse_max_bytes == REUSE_MAX_BYTES:
        stock_table, stock_index = stock.table(rt.load)
        where.update((s, (stock_table, stock_index[s])) for s in distinct if s in stock_index)
    plain = [s for s in distinct if not block_form(s) and s not in where]
    if plain:
        table = _library(plain, reuse_max_bytes, name_hint, rt, 0)
        where.update((s, (table, i)) for i, s in enumerate(plain))
    long = [s for s in distinct if block_form(s) and s not in where]
    tier2 = _long_kernels(long, reuse_max_bytes, name_hint, rt, where, tier)
    thunks = []
    by_index = list(distinct)
    for i in index:
        table, j = where[by_index[i]]
        fn, ctx = rt.thunk(getattr(table, "table", table), j)
        thunks.append(CThunk(fn=fn, ctx=ctx, keepalive=(table, rt, tier2)))
        if tier2 is not None and by_index[i] in long:
            tier2.targets.append((ctx, long.index(by_index[i])))
    if tier2 is not None:
        tiers.submit(tier2)
    return thunks


def _library(group, reuse_max_bytes, name_hint, rt, tier, only_cached=False):
    """The kernel table of ``group`` through the cache; long kernels (block form)
    as ``tier``, compiled with BLOCK_FLAGS. With ``only_cached``, None unless it
    was built before."""
    return cached_library(source_alias(group, reuse_max_bytes, tier),
                          lambda: module_source(group, reuse_max_bytes, tier or 2)[0],
                          re.sub(r"\W", "_", name_hint),
                          lambda path: KernelLibrary(rt.load(path)),
                          BLOCK_FLAGS if tier else (), only_cached=only_cached)


class KernelLibrary:
    """A loaded kernel library (its table capsule). The compile cache keeps
    it by weak reference: the library is closed once no function's thunks
    hold it (each thunk's ctx holds the capsule too, in C)."""
    __slots__ = ("table", "__weakref__")

    def __init__(self, table):
        self.table = table


def _long_kernels(long, reuse_max_bytes, name_hint, rt, where, tier):
    """Tables for the kernels in block form, into ``where``: ``tier`` when given;
    else tier 2 when it is built or ``config.tiered_compile`` is off, else tier 1
    now and, returned, the tier 2 build to run in the background (tiers.py)."""
    if not long:
        return None
    if tier is not None:
        where.update((s, (table, i)) for table in [_library(long, reuse_max_bytes, name_hint,
                                                            rt, tier)]
                     for i, s in enumerate(long))
        return None
    from vmc.config import config
    tiered = config.tiered_compile
    table = _library(long, reuse_max_bytes, name_hint, rt, 2, only_cached=tiered)
    job = None
    if table is None:
        table = _library(long, reuse_max_bytes, name_hint, rt, 1)
        here = compiledir()

        def build():        # the table's capsule: the contexts retargeted to it hold it
            with cache_directory(here):
                return _library(long, reuse_max_bytes, name_hint, rt, 2).table
        job = tiers.Tier2(build, rt)
    where.update((s, (table, i)) for i, s in enumerate(long))
    return job


def source_alias(group: list, reuse_max_bytes: int, tier: int = 0) -> str:
    """Everything ``module_source(group)`` reads besides the generator's code: the
    specs and the settings; with the code's digest, it names the source."""
    return (f"{_generator_digest()}\0{int(reuse_max_bytes)}\0{OUTLINE_MIN_CALLS}\0"
            f"{BLOCK_MIN_OPS}\0{BLOCK_LANES}\0{tier}\0{group!r}")


_digest: list = []


def _generator_digest() -> str:
    """A hash of the code that turns specs into C (this module and the scalar
    table): with the specs, it names a module's source without generating it."""
    if not _digest:
        h = hashlib.sha256()
        for mod in (__file__, scalar_c.__file__, segments.__file__):
            h.update(Path(mod).read_bytes() + b"\0")
        _digest.append(h.hexdigest())
    return _digest[0]


def runtime():
    """The shared driver module, built with the package (``_ew_runtime.c``).

    Raises RuntimeError (the fused builder warns once and falls back to numpy thunks)
    when it is not built, or was built from other headers than the kernels would be
    compiled with (a stale build would disagree with them on structs)."""
    try:
        from . import _ew_runtime
    except ImportError as e:
        raise RuntimeError(f"vmc.thunks.cgen._ew_runtime is not built ({e}); "
                                  "run `python setup.py build_ext --inplace`") from e
    if _ew_runtime.headers_digest != headers_digest():
        raise RuntimeError("vmc.thunks.cgen._ew_runtime was built from other C "
                                  "headers; run `python setup.py build_ext --inplace`")
    from vmc.config import config
    _ew_runtime.block_cache_set_cap(int(float(config.block_cache_mb) * 2 ** 20))
    if not _runtime_state:
        from vmc.thunks.threads import follow_config
        follow_config(_ew_runtime)      # its pool follows config.threads
        _runtime_state.append(True)
    return _ew_runtime


_runtime_state: list = []


def block_cache_info() -> dict:
    """The large-output block cache (vmc_blocks.h): blocks and bytes held, cap, hits, misses."""
    return runtime().block_cache_info()


def block_cache_release() -> None:
    """Return every cached output block to the OS now."""
    runtime().block_cache_release()
