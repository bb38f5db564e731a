"""``python -m bench.fuzz --graphs N --seed S``: differential fuzzing at scale.

Draws N random graphs (``graphs.py``: elementwise ops over broadcasting
operands, reductions, dot, indexing and set/inc_subtensor, ifelse, scan,
casts, softmax, sometimes a gradient), runs each in fast_run, without
rewrites and in DebugMode (``check.py``), and reports every graph that
disagrees, shrunk to the smallest graph that still fails the same way
(``shrink.py``), with the command that reproduces it. Exit status 1 when any
graph failed.

Graph i of seed S is the same graph on every machine (numpy's generator
seeded with [S, i]); the input values depend on S and the graph's sizes only.
Sizes vary: mostly tiny, some odd (vector loop tails), some large enough for
kernels to split across threads and reductions to go by chunks. ``--batch K`` compiles
K graphs into one function (one C compile for all: about K times faster on a
cold cache); a failing batch is checked again graph by graph. Generated C goes
to a fresh directory, removed at the end, unless ``--compiledir`` names one.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("--graphs", type=int, default=200, help="how many graphs (default 200)")
    ap.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    ap.add_argument("--start", type=int, default=0, help="the first graph's index")
    ap.add_argument("--batch", type=int, default=10, help="graphs per compiled function")
    ap.add_argument("--no-shrink", action="store_true", help="report failures unshrunk")
    ap.add_argument("--compiledir", help="where generated C is compiled (default: a temp dir)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    tmp = None
    if args.compiledir is None:
        tmp = args.compiledir = tempfile.mkdtemp(prefix="vmc_fuzz_")
    os.environ["VMC_COMPILEDIR"] = args.compiledir
    try:
        return run(args)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args):
    import vmc
    from .check import check
    from .graphs import draw
    from .shrink import shrink
    vmc.config.compiledir = args.compiledir
    t0 = time.time()
    failures, n_invalid, done = [], 0, 0
    pending = {}     # (dtype, dims) -> graphs waiting: one function per batch of them

    def flush(group):
        nonlocal n_invalid, done
        batch, pending[group] = pending.get(group, []), []
        if not batch:
            return
        found, inv = check([p for _, p in batch], args.seed)
        n_invalid += len(inv)
        done += len(batch)
        for g, exc in inv:
            print(f"invalid graph {batch[g][0]} (every mode raised {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0][:200]})", flush=True)
        for g, key, why in found:
            failures.append((batch[g][0], batch[g][1], key, why))
            _report(batch[g][0], batch[g][1], key, why, args, shrink)

    for i in range(args.start, args.start + args.graphs):
        prog = draw(np.random.default_rng([args.seed, i]))
        group = (prog.dtype, prog.dims)
        pending.setdefault(group, []).append((i, prog))
        if len(pending[group]) >= args.batch:
            flush(group)
        if not args.quiet and (i + 1 - args.start) % 500 == 0:
            print(f"  {i + 1 - args.start} graphs drawn, {done} checked, {len(failures)} "
                  f"failing, {n_invalid} invalid, {time.time() - t0:.0f} s", flush=True)
    for group in list(pending):
        flush(group)
    print(f"bench.fuzz: seed {args.seed}, graphs {args.start}..{args.start + args.graphs - 1}: "
          f"{done} checked, {len(failures)} failing, {n_invalid} invalid (every mode refused), "
          f"{time.time() - t0:.0f} s")
    return 1 if failures else 0


def _report(i, prog, key, why, args, shrink):
    print(f"\nFAILED graph {i} of seed {args.seed}: {key}", flush=True)
    print(_indent(prog.describe()))
    if not args.no_shrink:
        small, tries = shrink(prog, args.seed, key)
        print(f"shrunk ({tries} tries) to:")
        print(_indent(small.describe()))
        from .check import check
        found, _ = check([small], args.seed)
        if found:
            why = found[0][2]
    print(_indent(why))
    print(f"  reproduce: python -m bench.fuzz --seed {args.seed} --start {i} --graphs 1 "
          f"--batch 1\n", flush=True)


def _indent(text):
    return "\n".join("    " + line for line in str(text).splitlines())


if __name__ == "__main__":
    sys.exit(main())
