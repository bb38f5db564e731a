"""How ops run on the CPU: thunk factories registered by op type.

A factory is ``factory(node, destroyable) -> callable``: the callable takes the
input values and returns the output value (a tuple for several outputs).
``destroyable`` is the set of input positions whose buffers die at this node
and that nothing else can observe (the scheduler guarantees it); a factory
may write its output there (``out=``) when shape and dtype allow.

Factories are looked up along the op class's MRO, so a subclass inherits its
parent's thunk. The CPU, the GPU and scan register their own without
touching op classes.
"""
from __future__ import annotations

PY_THUNKS = {}


def register(*op_classes):
    def deco(factory):
        for cls in op_classes:
            PY_THUNKS[cls] = factory
        return factory
    return deco


def py_thunk(node, destroyable=frozenset()):
    for cls in type(node.op).__mro__:
        factory = PY_THUNKS.get(cls)
        if factory is not None:
            return factory(node, destroyable)
    raise NotImplementedError(f"no CPU thunk is registered for {type(node.op).__name__}")


# C thunk builders: each takes the list of (pc, node, destroyable) that it may
# handle and returns {pc: CThunk} for those it built. Builders see all nodes of
# a function at once so generated kernels compile together into one module.
# A builder that runs the C compiler is ``generates_c``: only fast_run uses it
# (fast_compile and the no-rewrite mode promise no C compilation).
C_BUILDERS = []


def register_c_builder(builder=None, *, generates_c=False):
    def deco(fn):
        C_BUILDERS.append((fn, generates_c))
        return fn
    return deco(builder) if builder is not None else deco


def build_each(items, module, make):
    """``{pc: thunk}`` for a builder whose thunks come one per node from a
    compiled module: ``make(module, node, destroyable)`` returns the node's
    thunk, or None where it does not apply; ``{}`` when the module is not built."""
    import importlib
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return {}
    built = {}
    for pc, node, destroyable in items:
        thunk = make(mod, node, destroyable)
        if thunk is not None:
            built[pc] = thunk
    return built


def c_thunks_for(code, destroy, generate_c=True):
    from vmc.compile.program import THUNK
    items = [(pc, ins.node, destroy.get(pc, frozenset()))
             for pc, ins in enumerate(code) if ins.kind == THUNK]
    built = {}
    for builder, generates in C_BUILDERS:
        if generates and not generate_c:
            continue
        todo = [it for it in items if it[0] not in built]
        if todo:
            built.update(builder(todo))
    return built
