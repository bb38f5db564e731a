"""Indexing a GpuArray as numpy does: the plan the index kernels run.

``plan(x, template, values)`` splits an index (a Subtensor template and its
values: host ints for slices and ints, int64 GpuArrays for index arrays) into

- the basic part, a view of ``x`` (slices, ints and new axes cost nothing),
- and, when the index has arrays, what ``kernels/index.h`` needs: the output
  shape, per output dim its stride into the view (0 where the index arrays'
  broadcast dims are), and per array its strides over the output dims and the
  stride and length of the view dim it indexes.

The output's dims follow numpy: the arrays' broadcast dims replace the indexed
dims where those are adjacent (an int between arrays counts as one of them),
else they come first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_DIMS, MAX_ARRAYS = 6, 3


@dataclass
class Plan:
    view: object            # the basic part of the index: a GpuArray view of x
    shape: tuple            # the result's shape
    strides: list           # per result dim: its element stride into ``view``
    arrays: list            # per index array: (GpuArray, strides over result dims,
                            #                   stride of its view dim, its length)


def _walk(ndim, template, values):
    """The index as ``(kind, value)`` entries with the Ellipsis expanded."""
    it = iter(values)
    items = []
    for e in template:
        if e[0] == "slice":
            items.append(("slice", tuple(next(it) if has else None for has in e[1:])))
        elif e[0] in ("int", "array"):
            items.append((e[0], next(it)))
        else:
            items.append((e[0], None))
    used = sum(1 for k, _ in items if k in ("slice", "int", "array"))
    out = []
    for k, v in items:
        if k == "ellipsis":
            out += [("slice", (None, None, None))] * (ndim - used)
        else:
            out.append((k, v))
    used = sum(1 for k, _ in out if k in ("slice", "int", "array"))
    if used > ndim:
        raise IndexError(f"too many indices for an array of {ndim} dims")
    return out + [("slice", (None, None, None))] * (ndim - used)


def plan(x, template, values):
    item = x.dtype.itemsize
    advanced = any(e[0] == "array" for e in template)
    off, parts, d = x.offset, [], 0     # parts: ("dim", n, stride) or ("adv", array, dim)
    for kind, v in _walk(x.ndim, template, values):
        if kind == "none":
            parts.append(("dim", 1, 0))
            continue
        n, s = x.shape[d], x.strides[d]
        if kind == "slice":
            b, e, st = slice(*[None if p is None else int(p) for p in v]).indices(n)
            parts.append(("dim", len(range(b, e, st)), st * s))
            off += b * s
        elif kind == "int":
            i = int(v)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {d} with size {n}")
            off += (i + n if i < 0 else i) * s
            if advanced:
                parts.append(("adv", None, None))
        else:
            parts.append(("adv", v, (s // item, n)))
        d += 1
    dims = [(n, s) for k, n, s in parts if k == "dim"]
    vshape = tuple(n for n, _ in dims)
    view = x.view(vshape, tuple(s for _, s in dims), off - x.offset)
    if not advanced:
        return Plan(view, vshape, None, [])
    return _advanced(view, parts, item)


def _advanced(view, parts, item):
    arrays = [(a, dim) for k, a, dim in parts if k == "adv" and a is not None]
    bshape = np.broadcast_shapes(*[a.shape for a, _ in arrays])
    adv_at = [i for i, p in enumerate(parts) if p[0] == "adv"]
    together = adv_at == list(range(adv_at[0], adv_at[-1] + 1))
    # result dims: ("view", stride) or ("b", position in bshape)
    plain = [("view", s // item, n) for k, n, s in parts if k == "dim"]
    bdims = [("b", j, n) for j, n in enumerate(bshape)]
    if together:
        at = sum(1 for p in parts[:adv_at[0]] if p[0] == "dim")
        res = plain[:at] + bdims + plain[at:]
    else:
        res = bdims + plain
    if len(res) > MAX_DIMS or len(arrays) > MAX_ARRAYS:
        raise NotImplementedError("too many dims or index arrays for the GPU kernel")
    shape = tuple(n for _, _, n in res)
    strides = [s if kind == "view" else 0 for kind, s, _ in res]
    out = []
    for a, (stride, length) in arrays:
        lead = len(bshape) - a.ndim
        astr = []
        for kind, j, _ in res:
            if kind != "b" or j < lead or a.shape[j - lead] == 1:
                astr.append(0)
            else:
                astr.append(a.strides[j - lead] // a.dtype.itemsize)
        out.append((a, astr, stride, length))
    return Plan(view, shape, strides, out)


def kernel_args(p, err_buf, slot):
    """The index arguments of the gather/scatter kernels (``VMC_IDX_PARAMS``)."""
    n = int(np.prod(p.shape)) if p.shape else 1
    pad = MAX_DIMS - len(p.shape)
    dims = [1] * pad + list(p.shape)
    strides = [0] * pad + list(p.strides)
    args = [np.int64(n), np.int64(len(p.arrays))] + [np.int64(v) for v in dims[1:]]
    args += [np.int64(v) for v in strides]
    for k in range(MAX_ARRAYS):
        if k < len(p.arrays):
            a, astr, stride, length = p.arrays[k]
            args += [a] + [np.int64(v) for v in [0] * pad + astr]
            args += [np.int64(stride), np.int64(length)]
        else:
            args += [err_buf] + [np.int64(0)] * (MAX_DIMS + 2)
    return args + [err_buf, np.int64(slot)], n
