"""Ops that run as a start and a wait (``vmc.compile.schedule.split_async``, the
``placement`` of an op): the start goes right after its input is made, the wait just
before its first reader, and the input's buffer is not written in between.

``Later`` is a stand-in for a collective that needs no MPI: its start keeps a reference
to the input (as a non-blocking send does), its wait returns a copy of what it kept, so
a write into the buffer between them would show in the result."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.graph.basic import Apply, Op
from vmc.ifelse import ifelse
from vmc.program import JUMP_IF_FALSE
from vmc.tensor.random import RandomGeneratorType
from vmc.thunks.registry import register

from compile_helpers import linker  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("linker")


class Later(Op):
    """``x`` itself, run as LaterStart + LaterWait once compiled."""
    nondeterministic = True

    def make_node(self, x):
        return Apply(self, [x], [x.type.make_variable()])

    @staticmethod
    def split_start_wait(nodes, block_of):
        Later.blocks = [block_of(n) for n in nodes]
        return [(n.outputs[0], LaterWait()(LaterStart()(n.inputs[0]), n.inputs[0]))
                for n in nodes]


class LaterStart(Op):
    placement = "asap"

    def make_node(self, x):
        # Any non-tensor type will do for the ticket.
        return Apply(self, [x], [RandomGeneratorType().make_variable()])


class LaterWait(Op):
    placement = "alap"

    def make_node(self, ticket, x):
        return Apply(self, [ticket, x], [x.type.make_variable()])


@register(LaterStart)
def _start(node, destroyable):
    return lambda x: [x]            # the buffer itself, as MPI holds it


@register(LaterWait)
def _wait(node, destroyable):
    return lambda ticket, x: np.array(ticket[0], copy=True)


def _labels(f):
    return list(f.program.labels)


def test_start_right_after_its_input_and_wait_before_its_reader():
    x, y = vt.dvector("x"), vt.dvector("y")
    a = vt.exp(x)
    late = Later()(a)
    busy = vt.tanh(vt.tanh(y) * 3.0)     # independent work: it runs in between
    out = vt.dot(late, busy) + vt.sum(a)
    f = vmc.function([x, y], out, mode="None")
    labels = _labels(f)
    start, wait = labels.index("LaterStart"), labels.index("LaterWait")
    assert labels[start - 1] == "exp"
    assert [lab for lab in labels[start + 1:wait] if "tanh" in lab]
    assert labels[wait + 1] == "Dot"
    xv, yv = np.linspace(-1, 1, 5), np.linspace(0, 2, 5)
    np.testing.assert_allclose(f(xv, yv), np.exp(xv) @ np.tanh(np.tanh(yv) * 3) +
                               np.exp(xv).sum())


def test_the_buffer_is_not_written_between_start_and_wait():
    # exp(x) dies at the second exp, after the start: without the wait reading
    # it, that exp could write its result into the buffer under the pending send.
    x = vt.dvector("x")
    a = vt.exp(x)
    out = vt.dot(Later()(a), vt.exp(a))
    xv = np.linspace(-1, 1, 7)
    f = vmc.function([x], out, mode="None")    # (fast_run fuses the two exps)
    labels = _labels(f)
    assert labels.index("LaterStart") < labels.index("LaterWait") - 1
    np.testing.assert_allclose(f(xv), np.exp(xv) @ np.exp(np.exp(xv)))


def test_wait_before_a_branch_that_reads_it():
    c, x = vt.lscalar("c"), vt.dvector("x")
    late = Later()(vt.exp(x))
    out = ifelse(c > 0, late * 2.0, x) + vt.tanh(x) * late   # read in the branch and after
    f = vmc.function([c, x], out, mode="None")
    kinds = [int(k) for k in f.program.kind]
    labels = _labels(f)
    assert labels.index("LaterWait") < kinds.index(JUMP_IF_FALSE)
    (ctxs,) = Later.blocks                   # one context: the root block
    assert len(ctxs) == 1 and ctxs[0].depth == 0
    xv = np.linspace(-1, 1, 4)
    e = np.exp(xv)
    np.testing.assert_allclose(f(1, xv), e * 2 + np.tanh(xv) * e)
    np.testing.assert_allclose(f(0, xv), xv + np.tanh(xv) * e)


def test_inside_a_branch_the_pair_stays_in_the_branch():
    c, x = vt.lscalar("c"), vt.dvector("x")
    out = ifelse(c > 0, Later()(vt.exp(x)) * 2.0, x)
    f = vmc.function([c, x], out, mode="None")
    kinds = [int(k) for k in f.program.kind]
    labels = _labels(f)
    jump = kinds.index(JUMP_IF_FALSE)
    assert jump < labels.index("LaterStart") < labels.index("LaterWait")
    (ctxs,) = Later.blocks                   # one context: the then-branch
    assert len(ctxs) == 1 and ctxs[0].depth == 1 and ctxs[0].branch == 0
    xv = np.linspace(-1, 1, 4)
    np.testing.assert_allclose(f(1, xv), np.exp(xv) * 2)
    np.testing.assert_allclose(f(0, xv), xv)
