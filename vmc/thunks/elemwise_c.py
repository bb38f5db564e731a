"""Generated C for elementwise work: every FusedElemwise node of a function, and
the Elemwise and CAReduce nodes left unfused, become kernels of one module
(``vmc.thunks.cgen``), compiled together by one batch builder."""
from __future__ import annotations

import warnings

from vmc.tensor.elemwise import Elemwise
from vmc.tensor.fused import FusedElemwise
from vmc.tensor.math import CAReduce

from . import cgen
from .cgen import KernelSpec
from .cgen.elemwise import kernel_source
from .cgen.scalar_c import REDUCE as C_REDUCTIONS   # the reductions the generator writes
from .registry import register_batch


def kernel_spec(node, destroyable=frozenset()):
    """The ``cgen.KernelSpec`` of a FusedElemwise node (NotImplementedError for
    what the generator does not take)."""
    op = node.op
    n_in, n_c = op.n_in, len(op.consts)
    names = [f"i{k}" for k in range(n_in)] + [f"c{k}" for k in range(n_c)] + \
            [f"t{j}" for j in range(len(op.ops))]
    constants = tuple((f"c{k}", v.item(), d)
                      for k, (v, (d, _)) in enumerate(zip(op.const_values(), op.consts)))
    body = tuple((names[n_in + n_c + j], sop.name, tuple(names[a] for a in args), dtype)
                 for j, (sop, args, dtype) in enumerate(op.ops))
    outputs = tuple((names[k], o.type.dtype) for k, o in zip(op.outputs, node.outputs))
    reduce = None
    reds = set(op.reduce)
    if reds != {None}:
        if len(reds) != 1 or None in reds:
            raise NotImplementedError("outputs with different reductions")
        name, axes, _ = op.reduce[0]
        if name not in C_REDUCTIONS:
            raise NotImplementedError(f"reduce {name}")
        reduce = (name, tuple(axes), False)
    inplace, used = [], set()
    # In place only with one output: the generated row loops take restrict
    # pointers, so with several outputs one output's stores may be ordered
    # before another output's loads of the input it overwrites.
    if reduce is None and len(node.outputs) == 1:
        for q, o in enumerate(node.outputs):
            for i in sorted(destroyable):
                v = node.inputs[i]
                if i not in used and v.type.dtype == o.type.dtype and \
                        v.type.broadcastable == o.type.broadcastable:
                    inplace.append((q, i))
                    used.add(i)
                    break
    inputs = tuple((v.type.dtype, v.type.broadcastable) for v in node.inputs)
    return KernelSpec(inputs=inputs, body=body, constants=constants, outputs=outputs,
                      inplace=tuple(inplace), reduce=reduce)


_warned = []


def elemwise_kernel_spec(node, destroyable=frozenset()):
    """The ``cgen.KernelSpec`` of a plain Elemwise node (one op, no casts:
    every input has the output's dtype), for graphs that were not fused."""
    out = node.outputs[0]
    dtype = out.type.dtype
    if len(node.outputs) != 1 or any(v.type.dtype != dtype or v.type.ndim != out.type.ndim
                                     for v in node.inputs):
        raise NotImplementedError("mixed dtypes or ranks")
    names = tuple(f"i{k}" for k in range(len(node.inputs)))
    inplace = ()
    for i in sorted(destroyable):
        if node.inputs[i].type.broadcastable == out.type.broadcastable:
            inplace = ((0, i),)
            break
    return KernelSpec(inputs=tuple((dtype, v.type.broadcastable) for v in node.inputs),
                      body=(("t0", node.op.scalar_op.name, names, dtype),), constants=(),
                      outputs=(("t0", dtype),), inplace=inplace, reduce=None)


def careduce_kernel_spec(node, destroyable=frozenset()):
    """The ``cgen.KernelSpec`` of a sum/max/min of floats that no elementwise
    producer was fused into: the reduction kernel with an empty body (a numpy
    thunk pays ~10 us of dispatch for a small sum, the kernel ~0.3 us)."""
    op, x, out = node.op, node.inputs[0], node.outputs[0]
    if (op.scalar_name not in C_REDUCTIONS or not op.axis or x.type.dtype[0] != "f"
            or out.type.dtype != x.type.dtype):
        raise NotImplementedError(f"reduce {op.scalar_name} of {x.type.dtype}")
    return KernelSpec(inputs=((x.type.dtype, x.type.broadcastable),), body=(),
                      outputs=(("i0", x.type.dtype),),
                      reduce=(op.scalar_name, tuple(op.axis), False))


# op class -> the function making its node's KernelSpec
SPEC_MAKERS = {FusedElemwise: kernel_spec, Elemwise: elemwise_kernel_spec,
               CAReduce: careduce_kernel_spec}


@register_batch(*SPEC_MAKERS, generates_c=True)
def fused_c_builder(items):
    """All FusedElemwise nodes of a function, and the Elemwise and CAReduce
    nodes left unfused, compiled together into one module."""
    todo = [(pc, node, d, make) for pc, node, d in items
            for make in [next(SPEC_MAKERS[c] for c in type(node.op).__mro__
                              if c in SPEC_MAKERS)]]
    if not cgen.have_compiler(probe=False):
        return {}
    pcs, specs = [], []
    for pc, node, d, make in todo:
        try:
            specs.append(make(node, d))
        except NotImplementedError:
            continue
        pcs.append(pc)
    # Generating a kernel's C costs about as much as hashing it for the cache,
    # so the common case (every kernel supported) builds at once; only when
    # that fails is each kernel's source generated alone, to drop the ones the
    # generator does not take (NotImplementedError) as before.
    try:
        return dict(zip(pcs, cgen.build_kernels(specs)))
    except Exception as exc:         # noqa: BLE001 - sorted out below
        first_error = exc
    kept = []
    for pc, spec in zip(pcs, specs):
        try:
            kernel_source("k", spec)
        except NotImplementedError:
            continue
        kept.append((pc, spec))
    if len(kept) < len(pcs):
        try:
            return dict(zip([pc for pc, _ in kept],
                            cgen.build_kernels([spec for _, spec in kept])))
        except Exception as exc:     # noqa: BLE001
            first_error = exc
    return _fall_back(cgen, first_error)


def _fall_back(cgen, exc):
    """{} (numpy thunks) after the module failed to build: no runtime, no
    compiler, or a generator bug (warned once); a generator bug must not stop
    the function from running."""
    if isinstance(exc, NotImplementedError):
        return {}
    if isinstance(exc, cgen.CompileError) and not cgen.have_compiler():
        return {}                    # no usable compiler: have_compiler() warned once
    if not _warned:
        _warned.append(exc)
        warnings.warn(f"vmc: generated elementwise C failed ({type(exc).__name__}: "
                      f"{exc}); running those kernels with numpy", stacklevel=3)
    return {}
