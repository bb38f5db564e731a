"""GPU kernels for fused elementwise groups, from the CPU's KernelSpec.

The fusion pass describes a group as a ``vmc.thunks.cgen.KernelSpec`` (the
same object the CPU generator takes); each scalar op is spelled by the same
templates (``vmc/thunks/cgen/scalar_c.py``), which the dialect
(``kernels/vmc_dialect.h``) and ``vmc_scalar.h`` make valid CUDA and OpenCL C.
Only the loops differ from the CPU's: a grid-stride loop over the elements.

Per spec, the kernels (named ``{k}_...``):

- no reduction: ``_c`` walks one collapsed dim (each operand with its own
  stride), ``_s`` walks ``ndim`` dims; outputs are written C-contiguous;
- reduction (``spec.reduce``): ``_rt`` one work-item per output element,
  looping over the reduced elements (many outputs: a bias gradient's column
  sums); ``_rg`` a work-group per output element, or per part of one, with a
  tree in local memory (few outputs, many elements each); ``_rc`` combines
  the parts when one output was split over several groups.

An input can be passed by value (``by_value``): a 0-d value that lives on the
host (a shape, a learning rate) is a kernel argument, not a transfer.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from vmc.thunks.cgen import scalar_c

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
EW_LOCAL = 256          # work-items per group of elementwise kernels
RED_LOCAL = 256         # of reduction kernels (a power of two: the tree halves it)


@functools.lru_cache(maxsize=None)
def preamble() -> str:
    """The dialect and vmc_scalar.h, inlined: NVRTC and OpenCL then need no
    include paths."""
    scalar = Path(scalar_c.__file__).with_name("vmc_scalar.h").read_text()
    return (KERNEL_DIR / "vmc_dialect.h").read_text() + "\n" + scalar + "\n"


def ctype(dtype) -> str:
    return scalar_c.C_TYPES[np.dtype(dtype).name]


_BUILTIN = re.compile(r"__builtin_(\w+)\(")


def _device_expr(expr: str) -> str:
    """A CPU template's expression for the dialect: ``__builtin_fabsf(`` is
    spelled ``fabsf(`` (the dialect maps the C99 names on OpenCL)."""
    return _BUILTIN.sub(r"\1(", expr)


class _Names:
    """Spec names -> kernel identifiers and dtypes."""

    def __init__(self, spec):
        self.c, self.dtype = {}, {}
        for j, (dt, _) in enumerate(spec.inputs):
            self.c[f"i{j}"], self.dtype[f"i{j}"] = f"a{j}", np.dtype(dt).name
        for m, (name, _, dt) in enumerate(spec.constants):
            self.c[name], self.dtype[name] = f"c{m}", np.dtype(dt).name
        for m, (name, op, args, dt) in enumerate(spec.body):
            missing = [a for a in args if a not in self.c]
            if missing:
                raise ValueError(f"kernel body: {name} = {op}{tuple(args)} uses {missing[0]!r} "
                                 "before it is defined")
            self.c[name], self.dtype[name] = f"t{m}", np.dtype(dt).name
        for d in self.dtype.values():
            if d not in scalar_c.C_TYPES:
                raise NotImplementedError(f"dtype {d}")


def body_lines(spec, nm: _Names) -> list:
    """Constants and the expression DAG as ``const T tK = ...;`` lines."""
    lines = [f"const {ctype(dt)} {nm.c[name]} = {scalar_c.literal(value, dt)};"
             for name, value, dt in spec.constants]
    for name, op, args, dt in spec.body:
        expr, _ = scalar_c.expression(op, [nm.c[a] for a in args],
                                      tuple(nm.dtype[a] for a in args), nm.dtype[name])
        lines.append(f"const {ctype(dt)} {nm.c[name]} = {_device_expr(expr)};")
    return lines


def _out_value(spec, nm, q):
    name, dt = spec.outputs[q]
    return scalar_c.convert(nm.c[name], nm.dtype[name], np.dtype(dt).name)


def _in_params(spec, by_value, strides: list) -> list:
    """Per input: its value, or its buffer, element offset and the strides named."""
    out = []
    for j, (dt, _) in enumerate(spec.inputs):
        t = ctype(dt)
        if by_value[j]:
            out.append(f"const {t} v{j}")
        else:
            out.append(f"GLOBAL_MEM const {t} *P{j}, const vmc_long o{j}"
                       + "".join(f", const vmc_long {s.format(j=j)}" for s in strides))
    return out


def _out_params(spec) -> list:
    return [f"GLOBAL_MEM {ctype(dt)} *Q{q}, const vmc_long r{q}"
            for q, (_, dt) in enumerate(spec.outputs)]


def used_inputs(spec) -> set:
    """The inputs the body or the outputs read (an input may only set the loop's
    shape: the destination of an assignment)."""
    used = {a for _, _, args, _ in spec.body for a in args} | {n for n, _ in spec.outputs}
    return {j for j in range(len(spec.inputs)) if f"i{j}" in used}


def _loads(spec, by_value, index: str, ind: str) -> str:
    used = used_inputs(spec)
    return "".join(f"{ind}const {ctype(dt)} a{j} = "
                   + (f"v{j};\n" if by_value[j] else f"P{j}[{index.format(j=j)}];\n")
                   for j, (dt, _) in enumerate(spec.inputs) if j in used)


def _unravel(spec, by_value, dims: list, strides: str, var: str, base: str, ind: str) -> str:
    """Offsets ``p{j}`` of linear index ``var`` over ``dims`` (outermost first),
    strides named ``strides.format(j, d)``; ``base`` the starting offset."""
    used = used_inputs(spec)
    live = [j for j in range(len(spec.inputs)) if not by_value[j] and j in used]
    src = "".join(f"{ind}vmc_long p{j} = {base.format(j=j)};\n" for j in live)
    if not dims or not live:
        return src
    src += f"{ind}vmc_long rem = {var};\n"
    for d in range(len(dims) - 1, 0, -1):
        src += f"{ind}{{ const vmc_long c = rem % {dims[d]}; rem /= {dims[d]};"
        src += "".join(f" p{j} += c * {strides.format(j=j, d=d)};" for j in live) + " }\n"
    return src + "".join(f"{ind}p{j} += rem * {strides.format(j=j, d=0)};\n" for j in live)


def elementwise_source(k: str, spec, by_value) -> str:
    """The ``{k}_c`` and ``{k}_s`` kernels of a spec without a reduction."""
    nm = _Names(spec)
    body = "".join(f"        {line}\n" for line in body_lines(spec, nm))
    stores = "".join(f"        Q{q}[r{q} + i] = {_out_value(spec, nm, q)};\n"
                     for q in range(len(spec.outputs)))
    loop = ("    for (vmc_long i = GID_0 * LDIM_0 + LID_0; i < n; i += GDIM_0 * LDIM_0) {\n")
    params = ", ".join(["const vmc_long n"] + _in_params(spec, by_value, ["s{j}"])
                       + _out_params(spec))
    src = (f"KERNEL void {k}_c({params}) {{\n{loop}"
           + _loads(spec, by_value, "o{j} + i * s{j}", " " * 8) + body + stores + "    }\n}\n")
    nd = spec.ndim
    if nd > 1:
        dims = [f"d{d}" for d in range(nd)]
        params = ", ".join(["const vmc_long n"] + [f"const vmc_long d{d}" for d in range(1, nd)]
                           + _in_params(spec, by_value, [f"s{{j}}_{d}" for d in range(nd)])
                           + _out_params(spec))
        src += (f"KERNEL void {k}_s({params}) {{\n{loop}"
                + _unravel(spec, by_value, dims, "s{j}_{d}", "i", "o{j}", " " * 8)
                + _loads(spec, by_value, "p{j}", " " * 8) + body + stores + "    }\n}\n")
    return src


# -- reductions -------------------------------------------------------------------------
def _reduce_ops(spec):
    """Per output: (accumulate(a, b) -> C, identity literal, C type)."""
    op = spec.reduce[0]
    out = []
    for _, dt in spec.outputs:
        acc, ident = scalar_c.reduce_templates(op, np.dtype(dt).name)
        out.append((lambda a, b, acc=acc: _device_expr(acc(a, b)), ident, ctype(dt)))
    return out


def reduce_split(spec):
    """(kept dims, reduced dims) of the loop, in the loop's order."""
    nd = spec.ndim
    axes = sorted({a % nd for a in spec.reduce[1]})
    return [d for d in range(nd) if d not in axes], axes


def reduce_source(k: str, spec, by_value) -> str:
    """``{k}_rt``, ``{k}_rg`` and ``{k}_rc`` (see the module docstring).

    Arguments: ``n_out, n_red[, n_split]``, the kept dims but the first and the
    reduced dims but the first, then per input its buffer, offset, strides over
    the kept dims and over the reduced dims; per output its buffer and offset."""
    nm = _Names(spec)
    kept, red = reduce_split(spec)
    reds = _reduce_ops(spec)
    kd = [f"kd{i}" for i in range(len(kept))]
    rd = [f"rd{i}" for i in range(len(red))]
    strides = [f"sk{{j}}_{i}" for i in range(len(kept))] + \
              [f"sr{{j}}_{i}" for i in range(len(red))]
    dims = ([f"const vmc_long kd{i}" for i in range(1, len(kept))]
            + [f"const vmc_long rd{i}" for i in range(1, len(red))])
    ins = _in_params(spec, by_value, strides)
    body = body_lines(spec, nm)
    nq = range(len(spec.outputs))

    def element(var, ind):
        """Accumulate the element at reduced index ``var`` into ``acc{q}``."""
        s = "".join(f"{ind}{{\n" for _ in (0,))
        s += _unravel(spec, by_value, rd, "sr{j}_{d}", var, "b{j}", ind + "    ")
        s += _loads(spec, by_value, "p{j}", ind + "    ")
        s += "".join(f"{ind}    {line}\n" for line in body)
        s += "".join(f"{ind}    acc{q} = {reds[q][0](f'acc{q}', _out_value(spec, nm, q))};\n"
                     for q in nq)
        return s + f"{ind}}}\n"

    def bases(var, ind):
        used = used_inputs(spec)
        live = [j for j in range(len(spec.inputs)) if not by_value[j] and j in used]
        s = _unravel(spec, by_value, kd, "sk{j}_{d}", var, "o{j}", ind)
        return s + "".join(f"{ind}const vmc_long b{j} = p{j};\n" for j in live)

    inits = "".join(f"{{ind}}{reds[q][2]} acc{q} = {reds[q][1]};\n" for q in nq)
    outs = _out_params(spec)
    # one work-item per output element
    src = (f"KERNEL void {k}_rt({', '.join(['const vmc_long n_out', 'const vmc_long n_red'] + dims + ins + outs)}) {{\n"
           "    for (vmc_long i = GID_0 * LDIM_0 + LID_0; i < n_out; i += GDIM_0 * LDIM_0) {\n"
           + bases("i", " " * 8) + inits.format(ind=" " * 8)
           + "        for (vmc_long e = 0; e < n_red; e++)\n" + element("e", " " * 8)
           + "".join(f"        Q{q}[r{q} + i] = acc{q};\n" for q in nq) + "    }\n}\n")
    # a group per output element (or part of one)
    shared = "".join(f"    LOCAL_MEM {reds[q][2]} sh{q}[{RED_LOCAL}];\n" for q in nq)
    tree = ("        for (vmc_long s = LDIM_0 / 2; s > 0; s >>= 1) {\n"
            "            if (LID_0 < s) {\n"
            + "".join(f"                sh{q}[LID_0] = {reds[q][0](f'sh{q}[LID_0]', f'sh{q}[LID_0 + s]')};\n"
                      for q in nq)
            + "            }\n            local_barrier();\n        }\n")
    src += (f"KERNEL void {k}_rg({', '.join(['const vmc_long n_out', 'const vmc_long n_red', 'const vmc_long n_split'] + dims + ins + outs)}) {{\n"
            + shared
            + "    for (vmc_long g = GID_0; g < n_out * n_split; g += GDIM_0) {\n"
            "        const vmc_long part = g % n_split;\n"
            + bases("(g / n_split)", " " * 8) + inits.format(ind=" " * 8)
            + "        for (vmc_long e = part * LDIM_0 + LID_0; e < n_red; e += LDIM_0 * n_split)\n"
            + element("e", " " * 8)
            + "".join(f"        sh{q}[LID_0] = acc{q};\n" for q in nq)
            + "        local_barrier();\n" + tree
            + "        if (LID_0 == 0) {\n"
            + "".join(f"            Q{q}[r{q} + g] = sh{q}[0];\n" for q in nq)
            + "        }\n        local_barrier();\n    }\n}\n")
    # combine the parts: n_split partial results per output, one work-item each
    parts = ", ".join(["const vmc_long n_out", "const vmc_long n_split"]
                      + [f"GLOBAL_MEM const {reds[q][2]} *W{q}, const vmc_long w{q}" for q in nq]
                      + outs)
    src += (f"KERNEL void {k}_rc({parts}) {{\n"
            "    for (vmc_long i = GID_0 * LDIM_0 + LID_0; i < n_out; i += GDIM_0 * LDIM_0) {\n"
            + inits.format(ind=" " * 8)
            + "        for (vmc_long e = 0; e < n_split; e++) {\n"
            + "".join(f"            acc{q} = {reds[q][0](f'acc{q}', f'W{q}[w{q} + i * n_split + e]')};\n"
                      for q in nq)
            + "        }\n"
            + "".join(f"        Q{q}[r{q} + i] = acc{q};\n" for q in nq) + "    }\n}\n")
    return src


def kernel_source(k: str, spec, by_value) -> str:
    """The kernels of one spec (NotImplementedError for an op or dtype the
    scalar table lacks; ValueError for a malformed spec)."""
    if not spec.outputs:
        raise ValueError("KernelSpec has no outputs")
    if any(len(f) != spec.ndim for _, f in spec.inputs):
        raise ValueError("KernelSpec inputs must all have the same number of dims")
    if spec.reduce is None:
        return elementwise_source(k, spec, by_value)
    op, axes, keepdims = spec.reduce
    if op not in scalar_c.REDUCE or keepdims:
        raise NotImplementedError(f"reduce {op} (keepdims={keepdims})")
    return reduce_source(k, spec, by_value)


def kernel_names(k: str, spec) -> dict:
    """{kernel name: work-group size} of a spec's kernels."""
    if spec.reduce is None:
        names = {f"{k}_c": EW_LOCAL}
        if spec.ndim > 1:
            names[f"{k}_s"] = EW_LOCAL
        return names
    return {f"{k}_rt": EW_LOCAL, f"{k}_rg": RED_LOCAL, f"{k}_rc": EW_LOCAL}
