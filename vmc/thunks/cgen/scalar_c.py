"""The C templates of the scalar ops: op name -> C expression per dtype class.

This table is the only place where scalar ops are spelled in C (the GPU
generator can read the same table). A template is a format string over the
already-converted argument expressions ``{0} {1} {2}`` and:

    {T}  C type the op computes in     {S}  "f" for float32, "" for float64
    {R}  C type of the result          {U}  unsigned type for wrapping arithmetic
    {N}  dtype name (int8, ...)        {MIN} {MAX}  limits of {T}

Dtype classes: ``f`` float32/float64, ``i`` signed ints, ``u`` unsigned ints,
``b`` bool; a key may list several (``"iu"``); ``"*"`` matches any.

``rule`` says which type the arguments are converted to before the template:
``result`` (the result dtype), ``promote`` (numpy's promotion of the argument
dtypes; the result is bool), ``switch`` (condition tested != 0, branches
converted to the result), ``own`` (no conversion; ``cast``).

Ops whose fast form is only valid on part of the range (exp, sigmoid,
softplus: results must be normal; sin, cos: |x| < 1.5e6) give a
``fast`` template and a ``big`` predicate: vectorized loops compute ``fast``
and recompute the lanes where ``big`` holds with the exact template.
Semantics follow numpy, including nan propagation in maximum/minimum/clip,
round half to even, Python's sign convention for int_div and mod, and
wrapping integer overflow (computed in unsigned types, which C defines).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

C_TYPES = {
    "bool": "npy_bool", "int8": "npy_int8", "int16": "npy_int16", "int32": "npy_int32",
    "int64": "npy_int64", "uint8": "npy_uint8", "uint16": "npy_uint16",
    "uint32": "npy_uint32", "uint64": "npy_uint64", "float32": "npy_float32",
    "float64": "npy_float64",
}
def dtype_class(dtype: str) -> str:
    return {"f": "f", "i": "i", "u": "u", "b": "b"}[np.dtype(dtype).kind]


@dataclass(frozen=True)
class CTemplate:
    templates: dict                 # class key -> C expression template
    rule: str = "result"
    fast: dict = field(default_factory=dict)   # vectorizable variant, valid where not big
    big: dict = field(default_factory=dict)    # predicate: needs the exact template

    def lookup(self, table: dict, cls: str):
        for key, tpl in table.items():
            if key == "*" or cls in key:
                return tpl
        return None


WRAP = {"iu": "({T})(({U}){0} {op} ({U}){1})"}   # modular int arithmetic without UB


def _arith(op, f=None, b=None):
    t = {"f": f or f"({{0}} {op} {{1}})", **{k: v.replace("{op}", op) for k, v in WRAP.items()}}
    if b:
        t["b"] = b
    return CTemplate(t)


def _unary_float(fn):
    return CTemplate({"f": fn + "{S}({0})"})


def _cmp(op):
    return CTemplate({"*": f"({{0}} {op} {{1}})"}, rule="promote")


_MAX = "(({0} > {1} || {0} != {0}) ? {0} : {1})"   # numpy: nan wins, ties give {1}
_MIN = "(({0} < {1} || {0} != {0}) ? {0} : {1})"

OPS = {
    "add": _arith("+", b="({0} | {1})"),
    "sub": _arith("-"),
    "mul": _arith("*", b="({0} & {1})"),
    "true_div": CTemplate({"f": "({0} / {1})"}),
    "int_div": CTemplate({"f": "vmc_floordiv{S}({0}, {1})", "iu": "vmc_floordiv_{N}({0}, {1})"}),
    "mod": CTemplate({"f": "vmc_mod{S}({0}, {1})", "iu": "vmc_mod_{N}({0}, {1})"}),
    "pow": CTemplate({"f": "pow{S}({0}, {1})", "iu": "vmc_pow_{N}({0}, {1})"}),
    "neg": CTemplate({"f": "(-{0})", "iu": "({T})(({U})0 - ({U}){0})"}),
    "abs": CTemplate({"f": "__builtin_fabs{S}({0})",
                     "i": "({0} < 0 ? ({T})(({U})0 - ({U}){0}) : {0})", "ub": "{0}"}),
    "sign": CTemplate({"f": "({0} > 0 ? ({T})1 : {0} < 0 ? ({T})-1 : {0} == 0 ? ({T})0 : {0})",
                      "i": "({T})(({0} > 0) - ({0} < 0))", "u": "({T})({0} > 0)"}),
    "sqr": CTemplate({"f": "({0} * {0})", "iu": "({T})(({U}){0} * ({U}){0})", "b": "{0}"}),
    "sqrt": _unary_float("__builtin_sqrt"),
    "reciprocal": CTemplate({"f": "(({T})1 / {0})", "iu": "vmc_recip_{N}({0})"}),
    "exp": CTemplate({"f": "vmc_exp{S}({0})"}, fast={"f": "vmc_exp{S}_fast({0})"},
                    big={"f": "vmc_exp_big{S}({0})"}),
    "log": _unary_float("vmc_log"),
    "log1p": _unary_float("vmc_log1p"), "expm1": _unary_float("vmc_expm1"),
    "log2": _unary_float("vmc_log2"), "log10": _unary_float("vmc_log10"),
    "tanh": _unary_float("vmc_tanh"),
    "sigmoid": CTemplate({"f": "vmc_sigmoid{S}({0})"}, fast={"f": "vmc_sigmoid{S}_fast({0})"},
                        big={"f": "vmc_exp_big{S}({0})"}),
    "softplus": CTemplate({"f": "vmc_softplus{S}({0})"}, fast={"f": "vmc_softplus{S}_fast({0})"},
                         big={"f": "vmc_exp_big{S}({0})"}),
    "erf": _unary_float("vmc_erf"),
    "sin": CTemplate({"f": "vmc_sin{S}({0})"}, fast={"f": "vmc_sin{S}_fast({0})"},
                    big={"f": "vmc_trig_big{S}({0})"}),
    "cos": CTemplate({"f": "vmc_cos{S}({0})"}, fast={"f": "vmc_cos{S}_fast({0})"},
                    big={"f": "vmc_trig_big{S}({0})"}),
    # libm: no vectorized form in vmc_math.h yet (correct, scalar speed)
    "tan": _unary_float("tan"), "arcsin": _unary_float("asin"),
    "arccos": _unary_float("acos"), "arctan": _unary_float("atan"),
    "sinh": _unary_float("sinh"), "cosh": _unary_float("cosh"),
    "arcsinh": _unary_float("asinh"), "erfc": _unary_float("erfc"),
    "gammaln": _unary_float("vmc_lgamma"),
    "arctan2": CTemplate({"f": "atan2{S}({0}, {1})"}),
    "floor": CTemplate({"f": "__builtin_floor{S}({0})", "iub": "{0}"}),
    "ceil": CTemplate({"f": "__builtin_ceil{S}({0})", "iub": "{0}"}),
    "round": CTemplate({"f": "__builtin_rint{S}({0})", "iub": "{0}"}),   # half to even
    "maximum": CTemplate({"f": _MAX, "iu": "({0} > {1} ? {0} : {1})", "b": "({0} | {1})"}),
    "minimum": CTemplate({"f": _MIN, "iu": "({0} < {1} ? {0} : {1})", "b": "({0} & {1})"}),
    "clip": CTemplate({"f": _MIN.format(_MAX.format("{0}", "{1}"), "{2}"),
                      "iu": "(({0} > {1} ? {0} : {1}) < {2} ? ({0} > {1} ? {0} : {1}) : {2})"}),
    "switch": CTemplate({"*": "({0} ? {1} : {2})"}, rule="switch"),
    "eq": _cmp("=="), "neq": _cmp("!="), "lt": _cmp("<"), "le": _cmp("<="),
    "gt": _cmp(">"), "ge": _cmp(">="),
    "and": CTemplate({"iub": "({0} & {1})"}), "or": CTemplate({"iub": "({0} | {1})"}),
    "xor": CTemplate({"iub": "({0} ^ {1})"}),
    "invert": CTemplate({"iu": "({T})(~{0})", "b": "(!{0})"}),
    "isnan": CTemplate({"f": "({0} != {0})", "iub": "0"}, rule="promote"),
    "isinf": CTemplate({"f": "(__builtin_fabs{S}({0}) == INFINITY)", "iub": "0"}, rule="promote"),
    "identity": CTemplate({"*": "{0}"}),
    "cast": CTemplate({"*": "{0}"}, rule="own"),
}

# Reductions fused after the body: op -> accumulate template and identity.
REDUCE = {
    "add": ({"f": "({0} + {1})", "iu": "({T})(({U}){0} + ({U}){1})", "b": "({0} | {1})"},
            {"*": "0"}),
    "maximum": ({"f": _MAX, "iu": "({0} > {1} ? {0} : {1})", "b": "({0} | {1})"},
            {"f": "-INFINITY", "iu": "{MIN}", "b": "0"}),
    "minimum": ({"f": _MIN, "iu": "({0} < {1} ? {0} : {1})", "b": "({0} & {1})"},
            {"f": "INFINITY", "iu": "{MAX}", "b": "1"}),
}


@functools.lru_cache(maxsize=None)
def fmt_args(dtype: str) -> dict:
    """The {T} {S} {U} {N} {MIN} {MAX} fields for a dtype (cached: asked once per
    scalar op written; callers only read the dict)."""
    dt = np.dtype(dtype)
    lim = {}
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo = f"({info.min + 1}LL - 1)" if dt.kind == "i" else "0"
        lim = {"MIN": f"(({C_TYPES[dt.name]}){lo})",
               "MAX": f"(({C_TYPES[dt.name]}){info.max}{'ULL' if dt.kind == 'u' else 'LL'})"}
    return {"T": C_TYPES[dt.name], "S": "f" if dt.name == "float32" else "",
            "U": "npy_uint64" if dt.itemsize == 8 else "npy_uint32", "N": dt.name,
            "MIN": lim.get("MIN", ""), "MAX": lim.get("MAX", "")}


def convert(expr: str, src: str, dst: str) -> str:
    """A C expression converting ``expr`` of dtype src to dtype dst."""
    if src == dst:
        return expr
    if dst == "bool":
        return f"({expr} != 0)"
    return f"({C_TYPES[dst]})({expr})"


def literal(value, dtype: str) -> str:
    """An exact C literal of ``value`` as dtype."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return "1" if value else "0"
    if dt.kind in "iu":
        v = int(value)
        if dt.kind == "i" and v == np.iinfo(np.int64).min:
            return "(-9223372036854775807LL - 1)"
        return f"(({C_TYPES[dt.name]}){v}{'ULL' if dt.kind == 'u' else 'LL'})"
    v = float(np.asarray(value, dt))
    if v != v:
        return f"(({C_TYPES[dt.name]})NAN)"
    if v in (float("inf"), float("-inf")):
        return f"(({C_TYPES[dt.name]}){'-' if v < 0 else ''}INFINITY)"
    return f"(({C_TYPES[dt.name]}){v.hex()})"


def compute_dtype(op: str, arg_dtypes: tuple, result: str) -> str:
    rule = OPS[op].rule
    if rule == "promote":
        return np.result_type(*[np.dtype(d) for d in arg_dtypes]).name
    return result


def expression(op: str, args: list, arg_dtypes: tuple, result: str, variant: str = "exact"):
    """C code of one scalar op, or NotImplementedError(op) when the table lacks it.

    Returns (expr, big): ``big`` is a C predicate that is true where the
    ``fast`` variant is invalid, or None.
    """
    sop = OPS.get(op)
    if sop is None:
        raise NotImplementedError(op)
    ct = compute_dtype(op, arg_dtypes, result)
    cls = dtype_class(ct)
    tpl = sop.lookup(sop.templates, cls)
    if tpl is None:
        raise NotImplementedError(op)
    if sop.rule == "own":
        conv = [convert(args[0], arg_dtypes[0], result)]
    elif sop.rule == "switch":
        conv = [f"({args[0]} != 0)"] + [convert(a, d, result)
                                        for a, d in zip(args[1:], arg_dtypes[1:])]
    else:
        conv = [convert(a, d, ct) for a, d in zip(args, arg_dtypes)]
    fields = fmt_args(ct)
    big = None
    if variant == "fast" and sop.lookup(sop.fast, cls):
        tpl = sop.lookup(sop.fast, cls)
        big = sop.lookup(sop.big, cls).format(*conv, **fields)
    expr = tpl.format(*conv, **fields)
    if sop.rule in ("promote",) and result != "bool":
        expr = convert(expr, "bool", result)
    return expr, big


def reduce_templates(op: str, dtype: str):
    """(accumulate template over {0} {1}, identity literal) for a fused reduction."""
    acc, ident = REDUCE[op]
    cls = dtype_class(dtype)
    fields = fmt_args(dtype)
    tpl = CTemplate(acc).lookup(acc, cls)
    return (lambda a, b: tpl.format(a, b, **fields)), CTemplate(ident).lookup(ident, cls).format(**fields)
