"""Timing: inner loops, calibration, and the interleaved rounds of one case's impls.

The machine's speed drifts by several percent over seconds. Timing each impl of a case in one
block, one impl after the other, would mix that drift into the ratios between impls (the
``x best peer`` column). So the impls of a case are timed *together*: each is warmed up and
calibrated first, then every round takes one sample (one inner loop) of every impl, the
starting impl rotating from round to round, and each impl's samples spread over the same
stretch of time. ``measure`` is the same procedure for a single call.

Nothing here knows about rows, statuses or peers (that is ``bench.harness``).
"""
from __future__ import annotations

import gc
import itertools
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

perf_counter_ns = time.perf_counter_ns

MAX_NUMBER = 1 << 26         # inner loop count at which calibration stops growing


@dataclass
class Timing:
    median: float
    q1: float
    q3: float
    min: float
    max: float
    number: int
    repeats: int


def loop_ns(call: Callable, args: tuple, number: int) -> int:
    """Nanoseconds of ``number`` calls of ``call(*args)``: no Python frame of ours per call."""
    it = itertools.repeat(None, number)
    t0 = perf_counter_ns()
    for _ in it:
        call(*args)
    return perf_counter_ns() - t0


def quartiles(samples: list) -> tuple:
    xs = sorted(samples)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def calibrate(call: Callable, args: tuple, target_s: float) -> tuple:
    """``(number, seconds)``: after one warm-up call, the inner loop count for which one loop
    lasts at least ``target_s`` (so the clock's resolution and the loop's own cost vanish),
    and how long the last such loop took."""
    call(*args)                                           # warm-up
    number, target_ns = 1, target_s * 1e9
    while True:
        t = loop_ns(call, args, number)
        if t >= target_ns or number >= MAX_NUMBER:
            return number, t / 1e9
        grow = target_ns / max(t, 1) * 1.2
        number = int(number * min(max(grow, 2.0), 100.0))


def round_count(repeats: int, budget_s: float, round_s: float) -> int:
    """Rounds (or repeats) to run: ``repeats`` when they fit in ``budget_s``, fewer when they
    do not, but at least 3 so that a median and quartiles mean something."""
    return int(min(repeats, max(3, budget_s // max(round_s, 1e-9))))


@dataclass
class Slot:
    """One call being timed among others: its loop count, samples, and what went wrong."""
    call: Callable
    args: tuple = ()
    number: int = 0
    repeat_s: float = 0.0        # duration of one inner loop, from calibration
    samples: list = field(default_factory=list)   # seconds per call, one per round
    error: Exception | None = None
    busy_ns: int = 0             # time spent calibrating and sampling this slot

    def timing(self) -> Timing:
        q1, med, q3 = quartiles(self.samples)
        return Timing(med, q1, q3, min(self.samples), max(self.samples), self.number,
                      len(self.samples))


def interleave(slots: list, *, repeats: int, target_s: float, budget_s: float,
               before: Callable[[int], None] | None = None) -> int:
    """Time ``slots`` together; returns the number of rounds run.

    Each slot is calibrated in turn (``calibrate``); then every round takes one sample of
    every slot, round ``r`` starting at slot ``r mod k`` so that no slot always runs right
    after the same one (caches, clock boosts). The rounds are ``repeats``, fewer when the whole
    does not fit in about ``budget_s`` per slot, at least 3. A slot whose call raises keeps the
    exception in ``error`` and sits out the remaining rounds; the others go on. ``before(i)``
    is called before slot ``i`` is calibrated and before each of its samples (a heartbeat for
    a watchdog; its own exceptions propagate). The garbage collector is off throughout, as in
    ``timeit``.
    """
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for i, s in enumerate(slots):
            _calibrate_slot(i, s, target_s, before)
        live = [s for s in slots if s.error is None]
        rounds = round_count(repeats, budget_s * len(live),
                             sum(s.repeat_s for s in live)) if live else 0
        k = len(slots)
        for r in range(rounds):
            for j in range(k):
                i = (r + j) % k
                if slots[i].error is None:
                    _sample(i, slots[i], before)
    finally:
        if gc_was_on:
            gc.enable()
    return rounds


def _calibrate_slot(i: int, s: Slot, target_s: float, before) -> None:
    if before is not None:
        before(i)
    t0 = perf_counter_ns()
    try:
        s.number, s.repeat_s = calibrate(s.call, s.args, target_s)
    except Exception as exc:                              # noqa: BLE001 - kept in the slot
        s.error = exc
    s.busy_ns += perf_counter_ns() - t0


def _sample(i: int, s: Slot, before) -> None:
    if before is not None:
        before(i)
    try:
        t = loop_ns(s.call, s.args, s.number)
    except Exception as exc:                              # noqa: BLE001 - kept in the slot
        s.error = exc
        return
    s.busy_ns += t
    s.samples.append(t / s.number / 1e9)


def measure(call: Callable, args: tuple = (), *, repeats: int = 7, target_s: float = 0.02,
            budget_s: float = 2.0) -> Timing:
    """Median time of one ``call(*args)``, in seconds: ``interleave`` of a single call.

    Warms up, picks the inner loop count so that one repeat lasts at least ``target_s``, then
    runs up to ``repeats`` repeats (at least 3) within about ``budget_s``. Raises what the
    call raises.
    """
    slot = Slot(call, args)
    interleave([slot], repeats=repeats, target_s=target_s, budget_s=budget_s)
    if slot.error is not None:
        raise slot.error
    return slot.timing()
