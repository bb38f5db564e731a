"""Device times in profiles: each GPU instruction of a profiled function is booked
on its device's ``EventLog`` (events around each kernel launch, read only when a
profile is printed, so profiling adds no wait per thunk); ``ProfileStats`` shows
them next to the host times, in the same tables and Chrome trace."""
from __future__ import annotations

from vmc.program import CThunk

from . import get_device
from ._gpu import EventLog


def event_log(dev):
    if dev.profiler is None:
        dev.profiler = EventLog()
    return dev.profiler


def profiled(thunk, key, device_name):
    """A Python thunk that runs ``thunk`` with its launches booked under ``key``."""
    log = event_log(get_device(device_name))
    call = thunk.keepalive if isinstance(thunk, CThunk) else thunk

    def run(*args):
        log.current = key
        try:
            return call(*args)
        finally:
            log.current = None
    run.device = device_name
    return run


def device_times(owner, devices):
    """``{pc: (device ns, launches)}`` of a profiled function's GPU instructions
    (``owner``: the key prefix its thunks were booked under)."""
    out = {}
    for name in devices:
        totals = event_log(get_device(name)).collect(get_device(name))
        for key, (ns, n) in totals.items():
            if key[0] == owner:
                ns0, n0 = out.get(key[1], (0, 0))
                out[key[1]] = (ns0 + ns, n0 + n)
    return out
