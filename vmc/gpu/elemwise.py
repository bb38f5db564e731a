"""GPU thunks of fused elementwise groups (and lone reductions): ``EwThunk``s
over the kernels ``codegen`` generates, all of a function in one module."""
from __future__ import annotations

from . import codegen, modules
from ._gthunks import EwThunk


def ew_thunks(dev, items) -> list:
    """One EwThunk per ``(KernelSpec, by_value flags, label)``, compiled together.

    Raises NotImplementedError for a spec the scalar table cannot write."""
    distinct, index = {}, []
    for spec, by_value, _ in items:
        index.append(distinct.setdefault((spec, tuple(by_value)), len(distinct)))
    parts, names = [], {}
    for (spec, by_value), i in distinct.items():
        parts.append(codegen.kernel_source(f"k{i}", spec, by_value))
        names.update(codegen.kernel_names(f"k{i}", spec))
    kernels = modules.build(dev, "".join(parts), names)
    hint = dev.keep.groups_hint
    return [EwThunk(dev, spec, by_value, kernels, f"k{i}", hint, label)
            for (spec, by_value, label), i in zip(items, index)]


_COPY: dict = {}


def copy(x):
    """A C-contiguous copy of a GpuArray (an identity kernel over its strides)."""
    from vmc.thunks.cgen import KernelSpec
    key = (x.dev.name, x.dtype.name, x.ndim)
    t = _COPY.get(key)
    if t is None:
        dt = x.dtype.name
        spec = KernelSpec(inputs=((dt, (False,) * x.ndim),), body=(),
                          outputs=(("i0", dt),))
        t = _COPY[key] = ew_thunks(x.dev, [(spec, (False,), "copy")])[0]
    return t(x)
