"""Which ops run on a device, and which of their values stay on the host.

The GPU thunks of both drivers are written once: ``gpu_thunk`` registers a
factory in the thunk registry (``vmc.thunks.registry``) of each GPU driver
("cuda", "opencl") and records the op's placement rule:

- ``supports(node)``: whether this node can run on the device (default: its
  device-side values are tensors of a dtype the kernels take);
- ``host_inputs(node)``: input positions read on the host (shapes, BLAS's
  alpha and beta);
- ``either_inputs(node)``: input positions read wherever the value already is
  (a 0-d value a kernel takes by value from the host, or reads on the device);
- ``host_outputs(node)``: output positions made on the host (a shape);
- ``follows(node)``: a view of one element (DimShuffle, SpecifyShape) runs
  where its input is, so a host scalar broadcast for a kernel stays a host
  value.

The transfer pass (``vmc.gpu.transfer``) asks ``placement(node)``; a node it
cannot place runs on the CPU with transfers around it.
"""
from __future__ import annotations

from dataclasses import dataclass

from vmc.graph.type import TensorType
from vmc.thunks.registry import register, register_batch

GPU_KINDS = ("cuda", "opencl")
DTYPES = frozenset(("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                    "uint64", "float32", "float64"))
_NONE = frozenset()


@dataclass(frozen=True)
class Rule:
    supports: object = None         # node -> bool
    host_inputs: object = None      # node -> set of input positions
    host_outputs: object = None     # node -> set of output positions
    either_inputs: object = None    # node -> set of input positions
    follows: object = None          # node -> bool: runs on the host when input 0 is there


RULES: dict = {}


def gpu_thunk(*op_classes, kind="py", supports=None, host_inputs=None, host_outputs=None,
              either_inputs=None, follows=None, also_cpu=False):
    """Decorator: ``factory(node, destroyable)`` runs ``op_classes`` on every GPU
    driver (``kind`` "py" or "c" as in the registry); ``also_cpu`` registers it
    on the CPU too (the transfers, whose thunks work wherever they run)."""
    def deco(factory):
        for d in GPU_KINDS + (("cpu",) if also_cpu else ()):
            register(*op_classes, device=d, kind=kind)(factory)
        _rule(op_classes, supports, host_inputs, host_outputs, either_inputs, follows)
        return factory
    return deco


def gpu_batch(*op_classes, supports=None, host_inputs=None, host_outputs=None,
              either_inputs=None):
    """Decorator: ``builder(items)`` builds the thunks of all these nodes of a
    function together, on every GPU driver (see ``register_batch``)."""
    def deco(builder):
        for d in GPU_KINDS:
            register_batch(*op_classes, device=d)(builder)
        _rule(op_classes, supports, host_inputs, host_outputs, either_inputs)
        return builder
    return deco


def _rule(op_classes, supports, host_inputs, host_outputs, either_inputs, follows=None):
    for cls in op_classes:
        old = RULES.get(cls, Rule())
        RULES[cls] = Rule(supports or old.supports, host_inputs or old.host_inputs,
                          host_outputs or old.host_outputs,
                          either_inputs or old.either_inputs, follows or old.follows)


def rule_of(op_class):
    for cls in op_class.__mro__:
        r = RULES.get(cls)
        if r is not None:
            return r
    return None


def device_value_ok(var) -> bool:
    return isinstance(var.type, TensorType) and var.type.dtype in DTYPES


def placement(node, on_host=lambda v: False):
    """``(host input positions, host output positions, either-side input
    positions)`` when ``node`` can run on a device, else None. ``on_host(v)``:
    whether a value is on the host (for the views that follow their input)."""
    rule = rule_of(type(node.op))
    if rule is None or (rule.follows and rule.follows(node) and on_host(node.inputs[0])):
        return None
    if rule.supports is not None and not rule.supports(node):
        return None
    host_in = rule.host_inputs(node) if rule.host_inputs else _NONE
    host_out = rule.host_outputs(node) if rule.host_outputs else _NONE
    either = rule.either_inputs(node) if rule.either_inputs else _NONE
    if not all(device_value_ok(v) for k, v in enumerate(node.inputs) if k not in host_in):
        return None
    if not all(device_value_ok(v) for k, v in enumerate(node.outputs) if k not in host_out):
        return None
    return host_in, host_out, either


def scalar_inputs(node):
    """The inputs of one element (0-d, or length 1 in every dim): kernels take
    them by value from the host."""
    return {k for k, v in enumerate(node.inputs)
            if isinstance(v.type, TensorType) and all(s == 1 for s in v.type.shape)}
