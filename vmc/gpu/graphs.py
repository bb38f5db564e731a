"""``config.gpu_graphs``: a compiled function's device work captured once and replayed.

Every instruction of such a function runs through a ``ReplayThunk``. The first
call runs as usual (kernels compile, the pool warms up); the second captures:
each maximal run of device instructions (kernels, cuBLAS, views; not the
transfers, host thunks or random draws, whose host state changes per call)
becomes a segment, recorded with ``Device.begin_capture`` (a CUDA stream
capture; on OpenCL a list of launches re-enqueued on replay) and closed by the
next instruction outside it, or by the end of the call. From the third call
on, a segment's instructions only store the outputs the capture left, and its
first instruction launches the graph, after checking the segment's inputs:

- the same object (a shared variable updated in place, a constant): nothing;
- another device array of the same shape and strides (a new batch, an update
  written out of place): copied into the captured one first;
- a host value (a learning rate, a shape): must be equal;

otherwise (another shape) the function stops replaying and runs as usual.
Outputs kept on the device (``Out(borrow=True)``) are the captured buffers,
rewritten by the next call.
"""
from __future__ import annotations

import warnings

import numpy as np

from vmc.program import CThunk

from ._gpu import GpuArray, copy_into
from ._gthunks import ReplayThunk, as_cthunk

WARM, CAPTURE, REPLAY, OFF = 0, 1, 2, 3
# Device thunks that may not be replayed: transfers (host memory), random draws
# (their host state advances every call).
NOT_CAPTURABLE = ("GpuFromHost", "HostFromGpu", "AsDriverArray", "PhiloxDraw")


class Segment:
    """A run of device instructions captured as one graph."""

    def __init__(self, dev):
        self.dev = dev
        self.external_regs, self.captured = [], []      # inputs from outside the segment
        self.written = set()                            # registers its instructions write
        self.graph = None
        self.flags_errors = False

    def replay(self, values) -> bool:
        for want, now in zip(self.captured, values):
            if now is want:
                continue
            if isinstance(want, GpuArray):
                if not (isinstance(now, GpuArray) and now.shape == want.shape
                        and now.dtype == want.dtype and now.flags_c_contiguous
                        and want.flags_c_contiguous):
                    return False
                copy_into(want, now)
            elif not (type(now) is type(want) and np.array_equal(now, want)):
                return False
        self.graph.launch()
        if self.flags_errors:
            self.dev.err_pending = True
        return True


class GraphState:
    """The replay state of one compiled function (shared by its ReplayThunks)."""

    def __init__(self, dev):
        self.dev, self.mode, self.open, self.segments = dev, WARM, None, []

    def enter(self, thunk, in_regs, in_values):
        if self.open is None:
            self.open = Segment(self.dev)
            self.dev.begin_capture()
            thunk.head = True
        seg = self.open
        thunk.segment = seg
        for r, v in zip(in_regs, in_values):
            if r not in seg.written and r not in seg.external_regs:
                seg.external_regs.append(r)
                seg.captured.append(v)

    def produced(self, out_regs):
        self.open.written.update(out_regs)
        self.open.flags_errors |= bool(self.dev.err_pending)

    def close(self):
        """End the open segment's capture and run it once (its work is due now)."""
        seg, self.open = self.open, None
        if seg is not None:
            seg.graph = self.dev.end_capture()
            seg.graph.launch()
            self.segments.append(seg)

    def after_call(self, ok: bool):
        if self.mode == WARM:
            self.mode = CAPTURE if ok else WARM
        elif self.mode == CAPTURE:
            if ok:
                self.close()
                self.mode = REPLAY
            else:
                self._discard()
                self.stop()

    def _discard(self):
        if self.open is not None:
            self.open = None
            self.dev.end_capture(keep=False)

    def stop(self):
        """Run as usual from now on (an input changed shape, or capture failed)."""
        if self.mode != OFF:
            warnings.warn("vmc: gpu_graphs: this function's inputs changed shape (or its "
                          "capture failed); it runs without graphs from now on", stacklevel=3)
        self.mode = OFF


def wrap(thunks, nodes, counts, dev):
    """The program's thunks wrapped for replay, and the function's GraphState."""
    state = GraphState(dev)
    out = []
    for t, node, (n_in, n_out) in zip(thunks, nodes, counts):
        on_device = any(getattr(v.type, "device", None) for v in node.outputs + node.inputs)
        capturable = on_device and type(node.op).__name__ not in NOT_CAPTURABLE
        inner = t
        r = ReplayThunk(state, inner, capturable, n_in, n_out, str(node.op))
        out.append(as_cthunk(r))
    return out, state
