"""The transfer pass: the optimized graph, with supported ops moved to a device.

It runs after the rewrites (``vmc.compile`` calls it when a device is asked
for, or when the graph reads a shared variable that lives on one). Walking the
graph in order, each node that ``placement`` accepts is rebuilt with
device-typed inputs and outputs (``types.GpuTensorType``): the same op, its
thunk now from the device's registry. Values cross between host and device
only where a consumer needs them on the other side, once each:

- a host input or host-made value read on the device: ``GpuFromHost``
  (a 0-d one that a kernel takes by value stays on the host);
- a constant read on the device: copied once now (``GpuConstant``);
- a device shared variable: read through its device twin, in place;
- a device value read on the host (an op with no device thunk, a host
  output): ``HostFromGpu``; ``Out(y, borrow=True)`` keeps a device value on
  the device (``AsDriverArray``);
- a device shared variable's update stays on the device.

Integer results read only on the host (shape arithmetic, such as the spatial
shape a conv gradient reads there) are computed on the host when their inputs
are there: on the device they would cost a transfer there and a read back,
which waits for all the device work queued before it.
"""
from __future__ import annotations

from vmc.graph.basic import Apply, Constant
from vmc.graph.fgraph import FunctionGraph

from . import thunks  # noqa: F401  (registers the GPU thunks and their placement rules)
from .ops import AsDriverArray, GpuFromHost, HostFromGpu
from .placement import placement
from .shared import GpuSharedVariable
from .types import GpuConstant, GpuTensorType


class _Values:
    """Each original variable's host and device versions, made on demand."""

    def __init__(self, device, inputs):
        self.device = device
        self.host = {v: v for v in inputs}
        self.gpu = {}
        self.made_on_device = set()      # outputs of nodes placed on the device

    def on_host(self, v):
        h = self.host.get(v)
        if h is None:
            if v in self.gpu or isinstance(v, GpuSharedVariable):
                h = HostFromGpu()(self.on_device(v, getattr(v, "device", None)))
            else:
                h = v                       # a constant or a host shared variable
            self.host[v] = h
        return h

    def is_on_host(self, v):
        """Whether ``v`` is (or can be read) on the host without a transfer."""
        if v in self.host:
            return True
        return v not in self.made_on_device and not isinstance(v, GpuSharedVariable)

    def on_device(self, v, device=None):
        device = device or self.device
        g = self.gpu.get(v)
        if g is not None and g.type.device == device:
            return g
        if isinstance(v, GpuSharedVariable):
            if v.device != device:
                raise ValueError(f"shared variable {v.name or v!r} lives on {v.device}, but "
                                 f"this function runs on {device}; make it with that "
                                 f"device, or use one device per function")
            g = v.device_var
        elif isinstance(v, Constant) and v.owner is None:
            from . import get_device
            from ._gpu import to_device
            g = GpuConstant(v, to_device(get_device(device), v.data), device)
        else:
            g = GpuFromHost(device)(self.on_host(v))
        self.gpu[v] = g
        return g


def to_device(fgraph, device, borrowed=frozenset(), outputs_on_device=False,
              inputs_on_device=frozenset()):
    """A new FunctionGraph over the same inputs with nodes placed on ``device``
    (None: all on the CPU, only reading device shared variables), and the
    map from each device shared variable to the twin the graph reads.
    ``outputs_on_device``: outputs made on the device stay GpuArrays;
    ``inputs_on_device``: positions of inputs whose values are GpuArrays on
    ``device`` (read there through a GpuFromHost that passes them through)."""
    vals = _Values(device, fgraph.inputs)
    for k in inputs_on_device:
        vals.made_on_device.add(fgraph.inputs[k])
        del vals.host[fgraph.inputs[k]]
    host_bound = _host_bound(fgraph, outputs_on_device) if device is not None else ()
    for node in fgraph.toposort():
        place = placement(node, vals.is_on_host) if device is not None else None
        if node in host_bound and all(vals.is_on_host(v) for v in node.inputs):
            place = None
        if place is None:
            ins = [vals.on_host(v) for v in node.inputs]
            if all(a is b for a, b in zip(ins, node.inputs)):
                continue                     # untouched: the node stays as it is
            new = Apply(node.op, ins, [o.type.make_variable(o.name) for o in node.outputs],
                        node.trace)
            for o, n in zip(node.outputs, new.outputs):
                vals.host[o] = n
            continue
        host_in, host_out, either = place
        ins = [vals.on_host(v) if k in host_in or (k in either and vals.is_on_host(v))
               else vals.on_device(v) for k, v in enumerate(node.inputs)]
        outs = [o.type.make_variable(o.name) if k in host_out else
                GpuTensorType.of(o.type, device).make_variable(o.name)
                for k, o in enumerate(node.outputs)]
        new = Apply(node.op, ins, outs, node.trace)
        for k, (o, n) in enumerate(zip(node.outputs, new.outputs)):
            (vals.host if k in host_out else vals.gpu)[o] = n
            if k not in host_out:
                vals.made_on_device.add(o)
    outputs = _outputs(fgraph, vals, borrowed, outputs_on_device)
    new_fg = FunctionGraph(fgraph.inputs, outputs, clone=False)
    new_fg.n_user_outputs = fgraph.n_user_outputs
    new_fg.update_shared = list(getattr(fgraph, "update_shared", []))
    twins = {v: g for v, g in vals.gpu.items() if isinstance(v, GpuSharedVariable)}
    return new_fg, twins


def _host_bound(fgraph, outputs_on_device):
    """The nodes with integer results that are read only on the host, by
    nodes that read them there or are such nodes themselves."""
    bound = set()

    def on_host(client, i):
        if client == "output":
            return not outputs_on_device
        if client in bound:
            return True
        place = placement(client, lambda v: True)
        return place is None or i in place[0] or i in place[2]

    for node in reversed(fgraph.toposort()):
        if all(getattr(o.type, "dtype", "float64").startswith(("int", "uint", "bool"))
               and all(on_host(c, i) for c, i in fgraph.clients[o]) for o in node.outputs):
            bound.add(node)
    return bound


def _outputs(fgraph, vals, borrowed, on_device=False):
    n_user = fgraph.n_user_outputs
    targets = list(getattr(fgraph, "update_shared", []))
    out = []
    for k, v in enumerate(fgraph.outputs):
        if k >= n_user:
            s = targets[k - n_user] if k - n_user < len(targets) else None
            out.append(vals.on_device(v, s.device) if isinstance(s, GpuSharedVariable)
                       else vals.on_host(v))
        elif on_device and v in vals.made_on_device:
            out.append(vals.gpu[v])
        elif k in borrowed and (v in vals.gpu or isinstance(v, GpuSharedVariable)):
            out.append(AsDriverArray()(vals.on_device(v, _device_of(vals, v))))
        else:
            out.append(vals.on_host(v))
    return out


def _device_of(vals, v):
    g = vals.gpu.get(v)
    return g.type.device if g is not None else v.device
