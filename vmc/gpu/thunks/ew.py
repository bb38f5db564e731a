"""Fused elementwise groups, unfused Elemwise and lone reductions on the device:
the CPU's KernelSpec of each node (``vmc.thunks.elemwise_c``), the kernels of
``vmc.gpu.codegen``, all of a function compiled into one module, each run by
an ``EwThunk`` (a C thunk: no Python per launch)."""
from __future__ import annotations

from collections import defaultdict

from vmc.graph.basic import SharedVariable
from vmc.tensor.elemwise import Elemwise
from vmc.tensor.fused import FusedElemwise
from vmc.tensor.math import CAReduce
from vmc.thunks.elemwise_c import SPEC_MAKERS

from .. import codegen, get_device
from .._gthunks import as_cthunk
from ..elemwise import ew_thunks
from ..placement import gpu_batch, scalar_inputs


def _maker(op):
    for cls, make in SPEC_MAKERS.items():
        if isinstance(op, cls):
            return make
    return None


def _spec(node, destroyable=frozenset()):
    make = _maker(node.op)
    if make is None:
        raise NotImplementedError(type(node.op).__name__)
    return make(node, destroyable)


def _supported(node):
    """Whether the generator writes this node's kernels (its ops and dtypes)."""
    try:
        spec = _spec(node)
        codegen.kernel_source("k", spec, [False] * len(spec.inputs))
    except (NotImplementedError, ValueError):
        return False
    return True


def _prefer_shared(node, destroyable):
    """An update written in place goes into the shared variable's own buffer
    (then its address never changes, as a captured CUDA graph needs), not into
    another dying input such as a transferred argument."""
    mine = frozenset(i for i in destroyable if isinstance(node.inputs[i], SharedVariable))
    return mine or destroyable


def _by_value(node):
    return [getattr(v.type, "device", None) is None for v in node.inputs]


@gpu_batch(FusedElemwise, Elemwise, CAReduce, supports=_supported, either_inputs=scalar_inputs)
def ew_builder(items):
    """All elementwise work of a function on one device: one module."""
    by_dev = defaultdict(list)
    for pc, node, destroyable in items:
        device = next(v.type.device for v in node.outputs + node.inputs
                      if getattr(v.type, "device", None))
        by_dev[device].append((pc, node, destroyable))
    built = {}
    for device, mine in by_dev.items():
        work = [(_spec(node, _prefer_shared(node, d)), _by_value(node), str(node.op))
                for _, node, d in mine]
        thunks = ew_thunks(get_device(device), work)
        built.update((pc, as_cthunk(t)) for (pc, _, _), t in zip(mine, thunks))
    return built
