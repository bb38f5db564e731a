"""Every op class of the vocabulary has a shape rule, a gradient rule and a
registered CPU thunk; ops are hashable and equal by their parameters."""
from __future__ import annotations

import importlib
import inspect
import pickle

import pytest

import vmc.tensor as vt
from vmc.graph.basic import Op
from vmc.thunks.registry import PY_THUNKS

MODULES = ["elemwise", "math", "shape", "subtensor", "creation", "nnet", "extra_ops",
           "blas_ops", "linalg", "random"]


def _op_classes():
    seen = {}
    for name in MODULES:
        mod = importlib.import_module(f"vmc.tensor.{name}")
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if issubclass(cls, Op) and cls is not Op and cls.__module__ == mod.__name__:
                seen[cls.__name__] = cls
    return [seen[k] for k in sorted(seen)]


@pytest.mark.parametrize("cls", _op_classes(), ids=lambda c: c.__name__)
def test_op_class_has_rules_and_a_thunk(cls):
    assert cls.infer_shape is not Op.infer_shape, f"{cls.__name__} has no shape rule"
    assert cls.pullback is not Op.pullback, f"{cls.__name__} has no pullback"
    assert any(c in PY_THUNKS for c in cls.__mro__), f"no CPU thunk for {cls.__name__}"


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
