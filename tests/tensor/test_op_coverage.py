"""Every op class in the vmc package has a shape rule, a gradient rule and a
registered thunk on every device it must run on; ops are hashable and equal
by their parameters."""
from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil

import pytest

import vmc
import vmc.tensor as vt
from vmc.graph.basic import Op
from vmc.thunks import registry
from vmc.thunks.perform import perform_thunk

# Modules that run programs rather than define ops, and the stock kernels' plain C
# library (not a Python module).
NOT_OP_MODULES = {"vmc.__main__", "vmc.demo", "vmc.thunks.cgen._stock_kernels"}
# Ops without a gradient, on purpose: each is made after gradients are taken
# (by a rewrite or the scheduler) or has no meaningful derivative.
NO_PULLBACK = {"CheckUpdates", "FromFunctionOp",     # as_op: no gradient, as in Theano
               "CollectiveStart", "CollectiveWait",   # the scheduler splits a collective
               "Collective"}                          # (their base: no computation)
# Ops without a shape rule, on purpose.
NO_SHAPE_RULE = {"CheckUpdates",      # no outputs
                 "CollectiveStart",   # its output is a ticket, not a tensor
                 "OpFromGraph"}       # Shape_i of its output runs it
# device -> the op classes that must have a thunk there (None: all of them).
MUST_RUN = {"cpu": None}
# Ops the scheduler turns into instructions of their own instead of thunks: an
# ifelse is a conditional jump and moves (its laziness), never a thunk.
NO_THUNK = {"IfElse"}


def _op_classes():
    seen = {}
    for info in pkgutil.walk_packages(vmc.__path__, "vmc."):
        if info.name in NOT_OP_MODULES:
            continue
        mod = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if (issubclass(cls, Op) and cls is not Op and cls.__module__ == mod.__name__
                    and not cls.__name__.startswith("_")):
                seen[f"{cls.__module__}.{cls.__name__}"] = cls
    return [seen[k] for k in sorted(seen)]


OP_CLASSES = _op_classes()


def test_the_walk_finds_ops_of_every_room():
    modules = {c.__module__.rsplit(".", 1)[0] for c in OP_CLASSES}
    names = {c.__name__ for c in OP_CLASSES}
    assert {"vmc.tensor", "vmc.scan"} <= modules
    assert {"Gemm", "FusedElemwise", "CrossentropySoftmaxDx", "CheckUpdates", "IfElse",
            "Scan", "Elemwise"} <= names


@pytest.mark.parametrize("cls", OP_CLASSES, ids=lambda c: c.__name__)
def test_op_class_has_rules(cls):
    if cls.__name__ not in NO_SHAPE_RULE:
        assert cls.infer_shape is not Op.infer_shape, f"{cls.__name__} has no shape rule"
    if cls.__name__ not in NO_PULLBACK:
        assert cls.pullback is not Op.pullback, f"{cls.__name__} has no pullback"


@pytest.mark.parametrize("device", sorted(registry.DEVICES))
@pytest.mark.parametrize("cls", OP_CLASSES, ids=lambda c: c.__name__)
def test_op_class_has_a_thunk_on_each_device(cls, device):
    must = MUST_RUN.get(device, ())
    if cls.__name__ not in NO_THUNK and (must is None or cls.__name__ in must):
        factory = registry.lookup(cls, device)
        # The generic thunk of ops with Theano's perform() is registered for Op
        # itself: it runs only the classes that define perform.
        assert factory is not None and (factory is not perform_thunk
                                        or hasattr(cls, "perform")), \
            f"no {device} thunk for {cls.__name__}"


def test_ops_are_equal_by_parameters_and_pickle():
    from vmc.tensor.extra_ops import Repeat, Split
    from vmc.tensor.linalg import Solve
    from vmc.tensor.random import Normal
    for make in (lambda: Split(2, 1), lambda: Repeat(0), lambda: Solve("pos", True),
                 lambda: Normal("float32", True), lambda: vt.linalg.Eigh("U")):
        a, b = make(), make()
        assert a == b and hash(a) == hash(b)
        assert pickle.loads(pickle.dumps(a)) == a
    assert Split(2, 1) != Split(2, 0) and Normal("float32", True) != Normal("float64", True)
