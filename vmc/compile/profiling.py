"""Per-thunk profiles of compiled functions: ``f.profile.summary()``."""
from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np


class ProfileStats:
    """Reads the VM's per-instruction times and counts and tabulates them."""

    def __init__(self, fn, compile_timings):
        self.fn = fn
        self.compile_timings = dict(compile_timings)

    def _rows(self):
        f = self.fn
        times = np.asarray(f.times, dtype=np.int64)
        counts = np.asarray(f.counts, dtype=np.int64)
        rows = []
        for pc in range(f.program.n_instr):
            node = f.node_of_pc.get(pc)
            if counts[pc] == 0 and times[pc] == 0:
                continue
            label = f.program.labels[pc] if pc < len(f.program.labels) else "?"
            t = f.program.thunk[pc]
            kind = "-" if t < 0 else (
                "C" if type(f.program.thunks[t]).__name__ == "CThunk" else "Py")
            cls = type(node.op).__name__ if node is not None else "?"
            rows.append((pc, label, cls, int(times[pc]), int(counts[pc]), kind))
        return rows

    def summary(self, file=None, n=20):
        out = file or sys.stdout
        rows = self._rows()
        total = sum(r[3] for r in rows) or 1
        calls = max((r[4] for r in rows), default=0)
        name = self.fn.name or "<unnamed>"
        print(f"Function profile: {name}", file=out)
        print(f"  calls: {calls}   time in thunks: {total / 1e9:.6f} s", file=out)
        comp = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in self.compile_timings.items())
        print(f"  compile: {comp}", file=out)
        for title, key in (("op class", lambda r: r[2]), ("op", lambda r: r[1])):
            agg = defaultdict(lambda: [0, 0])
            for r in rows:
                agg[key(r)][0] += r[3]
                agg[key(r)][1] += r[4]
            self._table(out, title, sorted(agg.items(), key=lambda kv: -kv[1][0])[:n], total)
        print("  per thunk:", file=out)
        print(f"    {'%':>6} {'cum %':>6} {'time/call':>11} {'calls':>8} kind  pc  op", file=out)
        cum = 0.0
        for r in sorted(rows, key=lambda r: -r[3])[:n]:
            share = 100.0 * r[3] / total
            cum += share
            per = r[3] / max(r[4], 1) / 1e3
            print(f"    {share:6.1f} {cum:6.1f} {per:9.2f}us {r[4]:8d} {r[5]:>4} {r[0]:3d}  {r[1]}",
                  file=out)

    @staticmethod
    def _table(out, title, items, total):
        print(f"  per {title}:", file=out)
        print(f"    {'%':>6} {'cum %':>6} {'time':>10} {'calls':>8}  {title}", file=out)
        cum = 0.0
        for k, (t, c) in items:
            share = 100.0 * t / total
            cum += share
            print(f"    {share:6.1f} {cum:6.1f} {t / 1e6:8.3f}ms {c:8d}  {k}", file=out)
