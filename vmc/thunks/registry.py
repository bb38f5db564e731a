"""How ops run: one thunk registry per device, keyed by op class.

A device ("cpu"; a GPU driver adds "cuda" or "opencl") holds, per op class:

- a **py** factory, ``factory(node, destroyable) -> callable``: the callable
  takes the input values and returns the output value (a tuple for several
  outputs, ``()`` for none);
- a **c** factory, ``factory(node, destroyable) -> CThunk | None`` (the ABI of
  ``vmc/vmc_thunk.h``); None means "not for this node" (a dtype or layout the
  C code does not take), and the py factory runs it instead;
- a **batch** builder, ``builder(items) -> {pc: thunk}`` over every node of a
  function it is registered for (``items`` are ``(pc, node, destroyable)``), for
  thunks that are built together: generated kernels compile into one module.

``destroyable`` is the set of input positions whose buffers die at this node
and that nothing else can observe (the scheduler guarantees it); a thunk may
write its output there when shape and dtype allow.

Factories are looked up along the op class's MRO, so a subclass inherits its
parent's thunks. Adding an op is one class in ``vmc/tensor`` and one
``register`` per device; the CPU (``vmc/thunks``), the GPU drivers
(``vmc/gpu``) and scan register without touching op classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("py", "c")


@dataclass
class Batch:
    builder: object           # builder(items) -> {pc: thunk}
    op_classes: tuple
    generates_c: bool         # runs the C compiler: only fast_run uses it


@dataclass
class DeviceRegistry:
    name: str
    py: dict = field(default_factory=dict)        # op class -> factory
    c: dict = field(default_factory=dict)         # op class -> factory
    batches: list = field(default_factory=list)   # [Batch], in registration order


DEVICES = {}


def device(name):
    """The registry of device ``name`` (made on first use)."""
    reg = DEVICES.get(name)
    if reg is None:
        reg = DEVICES[name] = DeviceRegistry(name)
    return reg


def register(*op_classes, device="cpu", kind="py"):
    """Decorator: ``factory`` runs nodes of ``op_classes`` on ``device``."""
    if kind not in KINDS:
        raise ValueError(f"register: kind must be one of {KINDS}, got {kind!r}")
    table = getattr(_device(device), kind)

    def deco(factory):
        for cls in op_classes:
            table[cls] = factory
        return factory
    return deco


def register_batch(*op_classes, device="cpu", generates_c=False):
    """Decorator: ``builder(items)`` builds the thunks of all nodes of
    ``op_classes`` of one function together (``{pc: thunk}``, leaving out the
    nodes it does not take). ``generates_c``: it runs the C compiler."""
    def deco(builder):
        _device(device).batches.append(Batch(builder, tuple(op_classes), generates_c))
        return builder
    return deco


_device = device   # ``register``'s keyword hides the function's name inside it


def lookup(op_class, device="cpu", kind="py"):
    """The factory of ``kind`` for ``op_class`` on ``device`` (along the MRO), or None."""
    reg = DEVICES.get(device)
    if reg is None:
        return None
    table = getattr(reg, kind)
    for cls in op_class.__mro__:
        factory = table.get(cls)
        if factory is not None:
            return factory
    return None


def has_thunk(op_class, device="cpu"):
    """Whether ``device`` can run ``op_class`` at all (a py factory, the fallback)."""
    return lookup(op_class, device, "py") is not None


def py_thunk(node, destroyable=frozenset(), device="cpu"):
    """The py thunk of ``node`` on ``device``; NotImplementedError when none is registered."""
    factory = lookup(type(node.op), device, "py")
    if factory is None:
        raise NotImplementedError(f"no {device} thunk is registered for "
                                  f"{type(node.op).__name__}")
    return factory(node, destroyable)


def evaluate(node, values, device="cpu"):
    """The output values of ``node`` on input ``values``, through its py thunk
    (a list, one per output); NotImplementedError when it has none. For
    constant folding (``vmc.opt.optimize``'s evaluator)."""
    result = py_thunk(node, frozenset(), device)(*values)
    return [result] if len(node.outputs) == 1 else list(result)


def build_thunks(items, device="cpu", use_c=True, generate_c=True):
    """``{pc: thunk}`` for ``items`` (``(pc, node, destroyable)``): batch builders
    first, then c factories (when ``use_c``: the C VM runs the program), then
    py factories. ``generate_c``: whether batch builders may run the C compiler."""
    reg = DEVICES.get(device) or DeviceRegistry(device)
    built = {}
    if use_c:
        for batch in reg.batches:
            if batch.generates_c and not generate_c:
                continue
            mine = [it for it in items
                    if it[0] not in built and isinstance(it[1].op, batch.op_classes)]
            if mine:
                built.update(batch.builder(mine))
        for pc, node, destroyable in items:
            if pc in built:
                continue
            factory = lookup(type(node.op), device, "c")
            if factory is not None:
                thunk = factory(node, destroyable)
                if thunk is not None:
                    built[pc] = thunk
    for pc, node, destroyable in items:
        if pc not in built:
            built[pc] = py_thunk(node, destroyable, device)
    return built


def module_or_none(name):
    """The compiled extension ``name``, or None when it is not built (the
    py thunks run instead): for c factories that live in Cython modules."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
