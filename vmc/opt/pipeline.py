"""Modes as lists of named passes, and the driver that runs them."""
from __future__ import annotations

import time

from vmc.config import config

from .merge import merge_pass

# mode name -> list of (pass name, function(fgraph))
MODES = {
    "fast_run": [("merge", merge_pass)],
    "fast_compile": [("merge", merge_pass)],
    None: [],
}


def optimize(fgraph, mode=None, timings=None):
    name = config.optimizer if mode is None else mode
    if name in ("None", "none"):
        name = None
    if isinstance(name, str):
        name = name.lower()
    if name not in MODES:
        raise ValueError(f"unknown mode {mode!r}; modes: {[m for m in MODES if m]} or None")
    for pass_name, fn in MODES[name]:
        t0 = time.perf_counter()
        fn(fgraph)
        if timings is not None:
            timings[f"rewrite:{pass_name}"] = time.perf_counter() - t0
    return fgraph
