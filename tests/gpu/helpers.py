"""Checking a function compiled for a device against the same graph on the CPU."""
import numpy as np

import vmc


def compile_both(inputs, outputs, device, **kwargs):
    """(the function on ``device``, the same graph compiled for the CPU)."""
    with vmc.config.change(device=device):
        f_dev = vmc.function(inputs, outputs, **kwargs)
    with vmc.config.change(device="cpu"):
        f_cpu = vmc.function(inputs, outputs, **kwargs)
    return f_dev, f_cpu


def tol(dtype):
    return {"rtol": 2e-5, "atol": 1e-6} if np.dtype(dtype) == np.float32 else \
        {"rtol": 1e-11, "atol": 1e-12}


def assert_close(got, want, dtype=None):
    got = got if isinstance(got, (list, tuple)) else [got]
    want = want if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
        if w.dtype.kind in "fc":
            np.testing.assert_allclose(g, w, **tol(dtype or w.dtype))
        else:
            np.testing.assert_array_equal(g, w)


def ops_on(f, device):
    """The op names of the nodes ``f`` runs on ``device`` and on the host."""
    on, off = [], []
    for node in f.fgraph.toposort():
        where = {getattr(v.type, "device", None) for v in node.outputs + node.inputs}
        (on if device in where else off).append(type(node.op).__name__)
    return on, off
