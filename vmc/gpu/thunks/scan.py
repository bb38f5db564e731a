"""Scan with its loop body on the device.

The body is compiled like the CPU's (``vmc.scan.thunk.InnerFunction``) and then
placed on the scan's device, its results kept there; the loop is the scan
thunk's own Python loop (``ScanThunk._python_loop``, which defines scan's
semantics), over device buffers: the traces are GpuArrays, a step reads its
sequence rows and previous values as views of them and its outputs are copied
into the trace rows on the device. Nothing moves to the host inside the loop
(an ``until`` condition is read each step).
"""
from __future__ import annotations

import numpy as np

from vmc.scan.op import Scan
from vmc.scan.thunk import InnerFunction, LoopState, ScanThunk

from .._gpu import GpuArray, copy_into, gpu_empty, to_device
from ..placement import device_value_ok, gpu_thunk
from .basic import device_of_node


class DeviceInner(InnerFunction):
    """The loop body, placed on ``device`` with its results kept there."""

    def __init__(self, op, device):
        self.device, self.op_of_body = device, op
        super().__init__(op)

    def place(self, fgraph, spec, updates):
        from vmc.compile import place_on_device
        return place_on_device(fgraph, spec, updates, device=self.device,
                               outputs_on_device=True,
                               inputs_on_device=_device_inner_inputs(self.op_of_body))


def _host_nonseqs(op):
    """Non-sequences that are integer scalars (sizes, indices): the loop passes them
    from the host, where the body's shape arithmetic reads them."""
    _, _, _, nonseqs = op.split_inner_inputs()
    return [v.type.ndim == 0 and v.type.dtype[0] in "iub" for v in nonseqs]


def _device_inner_inputs(op):
    """Positions of the body's inputs whose values are GpuArrays at run time."""
    n = len(op.inner_inputs)
    host = _host_nonseqs(op)
    first_nonseq = n - len(host)
    return {k for k in range(n) if k < first_nonseq or not host[k - first_nonseq]}


def _on(dev, v, dtype):
    """``v`` as a C-contiguous GpuArray of ``dtype`` on ``dev``."""
    if type(v) is not GpuArray:
        return to_device(dev, np.asarray(v), dtype)
    return v if v.flags_c_contiguous else v.copy()


class DeviceLoopState(LoopState):
    """LoopState over device buffers (see LoopState for the layout)."""

    def __init__(self, thunk, n, inits, carries):
        dev = thunk.dev
        info = thunk.info
        self.thunk, self.n, self.carries = thunk, n, list(carries)
        self.rings, self.traces, self.sizes, self.shapes = [], [], [], []
        for k, (init, lag) in enumerate(zip(inits, thunk.lags)):
            keep, total = info.keep[k], lag + n
            size = total if keep <= 0 else max(min(keep, total), min(lag + 1, total))
            init = _on(dev, init, thunk.rec_dtypes[k])
            buf = gpu_empty(dev, (size,) + tuple(init.shape[1:]), thunk.rec_dtypes[k])
            for r in range(lag):
                copy_into(buf[r % size], init[r])
            self.rings.append([buf[r % size] for r in range(lag)])
            self.traces.append(buf)
            self.sizes.append(size)
            self.shapes.append(tuple(init.shape[1:]))
        for l in range(info.n_nit):
            keep = info.keep[info.n_rec + l]
            self.sizes.append(n if keep <= 0 else min(keep, n))
            self.traces.append(None)
            self.shapes.append(None)

    def write_rec(self, k, i, v):
        if tuple(np.shape(v)) != self.shapes[k]:
            self._bad_shape(k, i, v, self.shapes[k])
        slot = (i + self.thunk.lags[k]) % self.sizes[k]
        copy_into(self.traces[k][slot], _on(self.thunk.dev, v, self.thunk.rec_dtypes[k]))

    def write_nit(self, l, i, v):
        k = self.thunk.info.n_rec + l
        dtype = np.dtype(self.thunk.nit_types[l].dtype)
        buf = self.traces[k]
        if buf is None:
            buf = self.traces[k] = gpu_empty(self.thunk.dev, (self.sizes[k],) +
                                             tuple(np.shape(v)), dtype)
            self.shapes[k] = tuple(np.shape(v))
        elif tuple(np.shape(v)) != self.shapes[k]:
            self._bad_shape(k, i, v, self.shapes[k])
        copy_into(buf[i % self.sizes[k]], _on(self.thunk.dev, v, dtype))

    def results(self, done, inputs):
        thunk, info = self.thunk, self.thunk.info
        outs = []
        for k in range(info.n_traces):
            lag = thunk.lags[k] if k < info.n_rec else 0
            buf, size = self.traces[k], self.sizes[k]
            if buf is None:
                t = thunk.nit_types[k - info.n_rec]
                shape = (0,) + tuple(0 if s is None else s for s in t.shape)
                outs.append(gpu_empty(thunk.dev, shape, t.dtype))
                continue
            total = lag + done
            if info.keep[k] <= 0:
                outs.append(buf[:total])
                continue
            m = min(info.keep[k], total)
            rows = np.arange(total - m, total) % size
            out = gpu_empty(thunk.dev, (m,) + tuple(buf.shape[1:]), buf.dtype)
            for j, r in enumerate(rows):
                copy_into(out[j], buf[int(r)])
            outs.append(out)
        for v in self.carries:
            owned = any(v is x for x in inputs) or type(v) is not GpuArray
            outs.append(_on(thunk.dev, v, v.dtype).copy() if owned else v)
        return outs[0] if len(outs) == 1 else tuple(outs)


class DeviceScanThunk(ScanThunk):
    state_class = DeviceLoopState

    def __init__(self, node, dev):
        self.dev = dev
        super().__init__(node)
        self.use_cython = False        # the Cython loop copies numpy rows

    def compile(self, op):
        return DeviceInner(op, self.dev.name)


def _supported(node):
    """Tensors of device dtypes everywhere (no random generator carried), and a
    body whose ops all have device thunks is not required: what has none runs
    on the CPU inside the body, with transfers."""
    host = _host_outer_inputs(node)
    return all(device_value_ok(v) for k, v in enumerate(node.inputs) if k not in host) and \
        all(device_value_ok(v) for v in node.outputs)


def _host_outer_inputs(node):
    """n_steps, and the integer scalar non-sequences (see ``_host_nonseqs``)."""
    host = _host_nonseqs(node.op)
    first = len(node.inputs) - len(host)
    return {0} | {first + j for j, h in enumerate(host) if h}


@gpu_thunk(Scan, supports=_supported, host_inputs=_host_outer_inputs)
def scan_thunk(node, destroyable):
    return DeviceScanThunk(node, device_of_node(node))
