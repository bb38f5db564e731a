"""Random graphs as small programs, so that a failing one can be shrunk.

A graph is a ``Program``: a list of ``Step``s over a fixed set of inputs, the
values it outputs and whether the gradient of its first output is appended.
Each step names its operands by value id (the inputs first, then one value
per step), so a step can be bypassed by pointing its readers at another value
of the same shape and dtype (``shrink.py``).

Shapes are tracked beside the graph: every value's actual shape is known when
the step is drawn, and a dim whose size is 1 is also a static 1 (a row, a
column, keepdims, a new axis), so that broadcasting is always legal. Ops are
applied where they cannot overflow or meet a discontinuity that rounding could
flip (no floor, no sign of a difference), so every mode must agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

import vmc
import vmc.tensor as vt
from vmc.ifelse import ifelse

# name -> (static shape, shape in terms of the graph's dims n, m, p); "k" is the
# ifelse condition (int64)
INPUTS = {"a": ((None, None), "nm"), "b": ((None, None), "nm"), "r": ((1, None), "1m"),
          "c": ((None, 1), "n1"), "v": ((None,), "m"), "s": ((), ""),
          "w": ((None, None), "mp"), "k": ((), ""), "z": ((None, None), "nm")}
SHARED = "z"         # a shared variable: each graph gets its own, and may update it
# (n, m, p) and how often: tiny; odd sizes (vector loop tails); large enough that
# kernels split across threads and full reductions go by chunks (vmc_ew_runtime.h)
DIMS = (((3, 4, 3), 0.6), ((17, 33, 5), 0.3), ((300, 260, 7), 0.1))


def input_shapes(dims):
    n, m, p = dims
    size = {"n": n, "m": m, "p": p, "1": 1}
    return [tuple(size[c] for c in letters) for _, letters in INPUTS.values()]

UNARY = {
    "neg": lambda e: -e, "tanh": vt.tanh, "sin": vt.sin, "cos": vt.cos,
    "sigmoid": vt.sigmoid, "abs": vt.abs, "softplus": vt.softplus, "erf": vt.erf,
    "exp_tanh": lambda e: vt.exp(vt.tanh(e)), "log_sq1": lambda e: vt.log(e * e + 1),
    "log1p_abs": lambda e: vt.log1p(vt.abs(e)), "sqrt_abs1": lambda e: vt.sqrt(vt.abs(e) + 1),
    "sq_tanh": lambda e: vt.tanh(e) ** 2, "cube": lambda e: vt.tanh(e) ** 3 * 2,
    "plus_minus": lambda e: (e + 2) - 2, "mul_div": lambda e: e * 2 / 2,
    "neg_neg": lambda e: -(-e), "one": lambda e: e - e + 1,
    "exp_log": lambda e: vt.exp(vt.log(e * e + 1)), "log_sigmoid": lambda e: vt.log(vt.sigmoid(e)),
    "recip": lambda e: 1 / (1 + e * e), "log1p_exp": lambda e: vt.log(1 + vt.exp(vt.tanh(e))),
}
BINARY = {
    "add": vt.add, "sub": vt.sub, "mul": vt.mul, "max": vt.maximum, "min": vt.minimum,
    "div": lambda a, b: a / (1 + vt.abs(b)), "lin": lambda a, b: a * 0.5 + b * 2.0,
    "switch": lambda a, b: vt.switch(vt.gt(a, b), a, b * 2),
    "hypot": lambda a, b: vt.sqrt(a * a + b * b + 1),
    "pow": lambda a, b: (vt.abs(a) + 1) ** vt.tanh(b),
}
REDUCE = {"sum": vt.sum, "max": vt.max, "min": vt.min, "mean": vt.mean,
          "prod": lambda x, axis=None, keepdims=False: vt.prod(vt.tanh(x) + 1.5, axis=axis,
                                                               keepdims=keepdims)}
INDEX = ("reverse", "tail", "transpose", "permute", "columns", "new_axis")
KINDS = ("unary", "unary", "binary", "binary", "binary", "reduce", "dot", "index", "set",
         "ifelse", "scan", "cast", "softmax", "join", "flatten", "cumsum", "adv_inc")


@dataclass(frozen=True)
class Step:
    kind: str
    args: tuple          # value ids
    params: tuple = ()


@dataclass
class Program:
    dtype: str
    dims: tuple          # (n, m, p): the inputs' sizes (INPUTS)
    steps: list
    outputs: list        # value ids
    grad: bool = False
    update: int | None = None    # value id of z's new value after each call, or None
    shapes: list = field(default_factory=list)    # actual shape per value id
    dtypes: list = field(default_factory=list)

    def describe(self):
        names = list(INPUTS) + [f"t{j}" for j in range(len(self.steps))]
        lines = [f"# inputs ({self.dtype}): " + ", ".join(
            f"{n}{shape}" for n, shape in zip(INPUTS, input_shapes(self.dims)))]
        for j, s in enumerate(self.steps):
            args = ", ".join(names[i] for i in s.args)
            params = "".join(f", {p!r}" for p in s.params)
            lines.append(f"t{j} = {s.kind}({args}{params})"
                         f"    # {self.shapes[len(INPUTS) + j]} {self.dtypes[len(INPUTS) + j]}")
        lines.append("outputs: " + ", ".join(names[i] for i in self.outputs)
                     + (" + grad of sum(first) wrt a" if self.grad else "")
                     + (f"; updates z <- {names[self.update]}" if self.update is not None
                        else ""))
        return "\n".join(lines)


def inputs(dtype):
    """The input variables of a graph of ``dtype`` (k is always int64); z's
    place holds a placeholder until ``build`` gives the graph its shared variable."""
    return [vt.tensor("int64" if n == "k" else dtype, static, n)
            for n, (static, _) in INPUTS.items()]


def input_values(dtype, dims, rng):
    vals = []
    for n, shape in zip(INPUTS, input_shapes(dims)):
        if n == "k":
            vals.append(np.array(rng.choice([-1, 1]), "int64"))
        else:
            vals.append(rng.uniform(-2, 2, shape).astype(dtype))
    return vals


def build(prog, variables, z_value):
    """``(outputs, update pairs, the graph's shared variable)`` of ``prog`` over
    ``variables`` (``inputs()``), with a fresh shared variable holding ``z_value``."""
    vals = list(variables)
    z = vmc.shared(z_value.copy(), name=SHARED)
    vals[list(INPUTS).index(SHARED)] = z
    for s in prog.steps:
        vals.append(apply_step(s, vals))
    outs = [vals[i] for i in prog.outputs]
    if prog.grad:
        cost = vt.sum(outs[0]) if outs[0].type.ndim else outs[0]
        outs.append(vmc.grad(cost, vals[0], disconnected_inputs="ignore"))
    updates = [(z, vals[prog.update])] if prog.update is not None else []
    return outs, updates, z


def apply_step(s, vals):
    x = vals[s.args[0]]
    k, p = s.kind, s.params
    if k == "unary":
        return UNARY[p[0]](x)
    if k == "binary":
        return BINARY[p[0]](x, vals[s.args[1]])
    if k == "reduce":
        return REDUCE[p[0]](x, axis=p[1], keepdims=p[2])
    if k == "dot":
        return vt.dot(x, vals[s.args[1]])
    if k == "index":
        return _index(p[0], x, *p[1:])
    if k == "set":
        sub = x[0] if p[0] == "first" else x[::2]
        fn = vt.set_subtensor if p[1] == "set" else vt.inc_subtensor
        return fn(sub, vals[s.args[1]])
    if k == "ifelse":
        return ifelse(vt.gt(vals[list(INPUTS).index("k")], 0), x, vals[s.args[1]])
    if k == "scan":
        f = UNARY[p[0]]
        ys, _ = vmc.scan(lambda row, h: f(h * 0.5 + row), sequences=[x],
                         outputs_info=[vt.zeros_like(x[0])])
        return ys
    if k == "cast":
        return vt.cast(x, p[0])
    if k == "softmax":
        return (vt.softmax if p[0] == "softmax" else vt.log_softmax)(vt.tanh(x) * 3)
    if k == "join":
        return vt.concatenate([x, vals[s.args[1]]], axis=0)
    if k == "flatten":
        return x.flatten()
    if k == "cumsum":
        return vt.cumsum(x, axis=p[0])
    if k == "adv_inc":      # repeated indices: their values add up
        return vt.inc_subtensor(x[np.array(p[0])], vals[s.args[1]])
    raise ValueError(f"unknown step kind {k!r}")


def _index(kind, x, perm=None):
    if kind == "reverse":
        return x[::-1]
    if kind == "tail":
        return x[1:]
    if kind == "transpose":
        return x.T
    if kind == "permute":
        return x[np.array(perm)]
    if kind == "columns":
        return x[:, ::-1]
    return x.dimshuffle("x", *range(x.type.ndim))


# -- drawing -----------------------------------------------------------------------------

def draw(rng, n_steps=None):
    """A random valid Program: steps are drawn and kept when their shapes fit."""
    dtype = "float32" if rng.random() < 0.2 else "float64"
    dims = DIMS[int(rng.choice(len(DIMS), p=[w for _, w in DIMS]))][0]
    prog = Program(dtype, dims, [], [])
    variables = inputs(dtype)
    prog.shapes = input_shapes(dims)
    prog.dtypes = ["int64" if n == "k" else dtype for n in INPUTS]
    vals = list(variables)
    vals[list(INPUTS).index(SHARED)] = vmc.shared(np.zeros(prog.shapes[-1], dtype), name=SHARED)
    target = n_steps or int(rng.integers(2, 9))
    tries = 0
    while len(prog.steps) < target and tries < 200:
        tries += 1
        step, shape, dt = _draw_step(rng, prog, vals)
        if step is None:
            continue
        try:
            var = apply_step(step, vals)
        except (TypeError, ValueError, NotImplementedError):
            continue
        if not _static_fits(var, shape):
            continue
        prog.steps.append(step)
        prog.shapes.append(shape)
        prog.dtypes.append(var.type.dtype)
        vals.append(var)
    n = len(vals)
    if n == len(INPUTS):
        prog.outputs = [0]
    else:
        extra = min(int(rng.integers(0, 3)), n - 1 - len(INPUTS))
        prog.outputs = [n - 1] + [int(i) for i in rng.choice(
            np.arange(len(INPUTS), n - 1), size=extra, replace=False)]
    prog.grad = bool(rng.random() < 0.25)
    z = list(INPUTS).index(SHARED)
    fits = [i for i in range(len(INPUTS), n) if prog.shapes[i] == prog.shapes[z]
            and prog.dtypes[i] == dtype]
    if fits and rng.random() < 0.3:     # z's new value: written in place when it can be
        prog.update = int(rng.choice(fits))
    return prog


def _static_fits(var, shape):
    """A size-1 dim must be a static 1 (broadcastable), and static sizes true."""
    st = var.type.shape
    return len(st) == len(shape) and all(
        (s == d) if s is not None else d != 1 for s, d in zip(st, shape))


def _float_ids(prog):
    return [i for i, d in enumerate(prog.dtypes) if d.startswith("float")]


def _draw_step(rng, prog, vals):
    """(step, its actual shape, its dtype), or (None, ...) when this try failed."""
    kind = rng.choice(KINDS)
    ids = _float_ids(prog)
    x = int(rng.choice(ids))
    sx, dt = prog.shapes[x], prog.dtypes[x]
    if kind == "unary":
        return Step("unary", (x,), (str(rng.choice(list(UNARY))),)), sx, dt
    if kind == "binary":
        y = int(rng.choice(ids))
        shape = _broadcast(sx, prog.shapes[y])
        if shape is None:
            return None, None, None
        return (Step("binary", (x, y), (str(rng.choice(list(BINARY))),)), shape,
                _upcast(dt, prog.dtypes[y]))
    if kind == "reduce":
        axis = None if not sx or rng.random() < 0.3 else int(rng.integers(len(sx)))
        keep = bool(rng.random() < 0.5)
        shape = _reduced(sx, axis, keep)
        return Step("reduce", (x,), (str(rng.choice(list(REDUCE))), axis, keep)), shape, dt
    if kind == "dot":
        return _draw_dot(rng, prog, x, ids)
    if kind == "index":
        return _draw_index(rng, x, sx, dt)
    if kind == "set":
        return _draw_set(rng, prog, x, ids)
    if kind == "ifelse":
        same = [i for i in ids if prog.shapes[i] == sx and prog.dtypes[i] == dt
                and vals[i].type.shape == vals[x].type.shape]
        return Step("ifelse", (x, int(rng.choice(same))), ()), sx, dt
    if kind == "scan":
        if not sx or sx[0] < 2:
            return None, None, None
        return Step("scan", (x,), (str(rng.choice(list(UNARY))),)), sx, dt
    if kind == "cast":
        to = "float32" if dt == "float64" else "float64"
        return Step("cast", (x,), (to,)), sx, to
    if kind == "softmax" and len(sx) == 2 and sx[1] > 1:     # along the last axis
        return Step("softmax", (x,), (str(rng.choice(["softmax", "log_softmax"])),)), sx, dt
    if kind in ("join", "adv_inc"):
        return _draw_rows(rng, prog, kind, x, ids)
    if kind == "flatten" and len(sx) >= 1 and int(np.prod(sx)) > 1:
        return Step("flatten", (x,), ()), (int(np.prod(sx)),), dt
    if kind == "cumsum" and sx and sx[-1] > 1:
        axis = int(rng.integers(len(sx)))
        return (Step("cumsum", (x,), (axis,)), sx, dt) if sx[axis] > 1 else (None, None, None)
    return None, None, None


def _draw_rows(rng, prog, kind, x, ids):
    """join: x and a value of x's row shape stacked; adv_inc: rows of x picked
    with repeats, incremented by a value that broadcasts to them."""
    sx = prog.shapes[x]
    if not sx or sx[0] < 2:
        return None, None, None
    if kind == "join":
        ys = [i for i in ids if len(prog.shapes[i]) == len(sx) and prog.shapes[i][1:] == sx[1:]
              and prog.shapes[i][0] > 1 and prog.dtypes[i] == prog.dtypes[x]]
        y = int(rng.choice(ys))
        return Step("join", (x, y), ()), (sx[0] + prog.shapes[y][0],) + sx[1:], prog.dtypes[x]
    rows = tuple(int(i) for i in rng.integers(0, min(sx[0], 40), size=int(rng.integers(2, 6))))
    sub = (len(rows),) + sx[1:]
    ys = [i for i in ids if _broadcast(sub, prog.shapes[i]) == sub]
    y = int(rng.choice(ys)) if ys else None
    if y is None:
        return None, None, None
    return Step("adv_inc", (x, y), (rows,)), sx, prog.dtypes[x]


def _draw_dot(rng, prog, x, ids):
    sx = prog.shapes[x]
    if len(sx) not in (1, 2):
        return None, None, None
    ys = [i for i in ids if len(prog.shapes[i]) in (1, 2) and prog.shapes[i][0] == sx[-1]
          and sx[-1] > 1]
    if not ys:
        return None, None, None
    y = int(rng.choice(ys))
    shape = sx[:-1] + prog.shapes[y][1:]
    return Step("dot", (x, y), ()), shape, _upcast(prog.dtypes[x], prog.dtypes[y])


def _draw_index(rng, x, sx, dt):
    kind = str(rng.choice(INDEX))
    if kind in ("reverse", "tail", "permute") and (not sx or sx[0] < (3 if kind == "tail" else 2)):
        return None, None, None
    if kind == "permute" and sx[0] > 40:
        return None, None, None
    if kind == "transpose" and len(sx) != 2:
        return None, None, None
    if kind == "columns" and (len(sx) != 2 or sx[1] < 2):
        return None, None, None
    if kind == "new_axis" and len(sx) > 2:
        return None, None, None
    shape = {"reverse": sx, "tail": (sx[0] - 1,) + sx[1:] if sx else sx,
             "transpose": sx[::-1], "permute": sx, "columns": sx,
             "new_axis": (1,) + sx}[kind]
    params = (kind, tuple(int(i) for i in rng.permutation(sx[0]))) if kind == "permute" \
        else (kind,)
    return Step("index", (x,), params), shape, dt


def _draw_set(rng, prog, x, ids):
    sx = prog.shapes[x]
    if not sx or sx[0] < 2:
        return None, None, None
    where = str(rng.choice(["first", "every_other"]))
    sub = sx[1:] if where == "first" else ((sx[0] + 1) // 2,) + sx[1:]
    ys = [i for i in ids if _broadcast(sub, prog.shapes[i]) == sub]
    if not ys:
        return None, None, None
    y = int(rng.choice(ys))
    return (Step("set", (x, y), (where, str(rng.choice(["set", "inc"])))), sx,
            prog.dtypes[x])


def _broadcast(a, b):
    """numpy's broadcast shape, where only size-1 dims stretch (they are static 1)."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(out)


def _reduced(shape, axis, keep):
    if axis is None:
        return (1,) * len(shape) if keep else ()
    return tuple(1 if k == axis else d for k, d in enumerate(shape)) if keep else \
        tuple(d for k, d in enumerate(shape) if k != axis)


def _upcast(a, b):
    return "float64" if "float64" in (a, b) else "float32"


def without(prog, **changes):
    """A copy of ``prog`` with fields changed (lists copied)."""
    return replace(prog, steps=list(changes.pop("steps", prog.steps)),
                   outputs=list(changes.pop("outputs", prog.outputs)),
                   shapes=list(changes.pop("shapes", prog.shapes)),
                   dtypes=list(changes.pop("dtypes", prog.dtypes)), **changes)
