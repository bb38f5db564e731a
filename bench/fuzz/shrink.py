"""Shrinking a failing graph to the smallest one that still fails the same way.

Candidates, tried until none helps: drop the gradient or the update, keep one
output, output an operand of an output's step instead, and bypass a step (its readers read one of its operands, or an input, of the same
shape and dtype instead); steps nothing reads any more are removed. A
candidate is kept when it fails with the same key (``check.failure``).
"""
from __future__ import annotations

from .check import check
from .graphs import INPUTS, Step, without


def shrink(prog, seed, key, budget=300):
    """The smallest program found that still fails with ``key``, and the tries made."""
    tries = 0
    prog = _pruned(prog)
    changed = True
    while changed and tries < budget:
        changed = False
        for cand in _candidates(prog):
            tries += 1
            found, _ = check([cand], seed)
            if found and found[0][1] == key:
                prog, changed = cand, True
                break
            if tries >= budget:
                break
    return prog, tries


def _candidates(prog):
    if prog.grad:
        yield without(prog, grad=False)
    if prog.update is not None:
        yield _pruned(without(prog, update=None))
    if len(prog.outputs) > 1:
        for o in prog.outputs:
            yield _pruned(without(prog, outputs=[o]))
    n_in = len(INPUTS)
    for k, o in enumerate(prog.outputs):      # output an operand of the output's step
        if o >= n_in:
            for a in prog.steps[o - n_in].args:
                if a >= n_in and a not in prog.outputs:
                    yield _pruned(without(prog, outputs=prog.outputs[:k] + [a]
                                          + prog.outputs[k + 1:]))
    for j in reversed(range(len(prog.steps))):
        vid = n_in + j
        for r in _replacements(prog, j):
            yield _pruned(_rewire(prog, vid, r))


def _replacements(prog, j):
    """Values that may stand for step j's: its operands first, then inputs."""
    vid = len(INPUTS) + j
    shape, dtype = prog.shapes[vid], prog.dtypes[vid]
    seen = []
    for v in list(prog.steps[j].args) + list(range(len(INPUTS))):
        if v not in seen and v < vid and prog.shapes[v] == shape and prog.dtypes[v] == dtype:
            seen.append(v)
            yield v


def _rewire(prog, old, new):
    steps = [Step(s.kind, tuple(new if a == old else a for a in s.args), s.params)
             for s in prog.steps]
    outputs = [new if o == old else o for o in prog.outputs]
    update = new if prog.update == old else prog.update
    return without(prog, steps=steps, outputs=outputs, update=update)


def _pruned(prog):
    """``prog`` without the steps no output needs (value ids renumbered)."""
    n_in = len(INPUTS)
    live = set(prog.outputs) | ({prog.update} if prog.update is not None else set())
    for j in reversed(range(len(prog.steps))):
        if n_in + j in live:
            live.update(prog.steps[j].args)
    keep = [j for j in range(len(prog.steps)) if n_in + j in live]
    renum = {i: i for i in range(n_in)}
    for new, j in enumerate(keep):
        renum[n_in + j] = n_in + new
    steps = [Step(prog.steps[j].kind, tuple(renum[a] for a in prog.steps[j].args),
                  prog.steps[j].params) for j in keep]
    shapes = prog.shapes[:n_in] + [prog.shapes[n_in + j] for j in keep]
    dtypes = prog.dtypes[:n_in] + [prog.dtypes[n_in + j] for j in keep]
    return without(prog, steps=steps, outputs=[renum[o] for o in prog.outputs],
                   shapes=shapes, dtypes=dtypes,
                   update=renum[prog.update] if prog.update is not None else None)
