"""``python -m bench [--quick] [--only A,C] [--json results.json] [--md PATH] [--threads N|all]``.

Runs the benchmark groups A..J, each in a child process (single thread, pinned to one core;
``--threads all``: every peer at its default threading on every allowed CPU), prints one
table per group, and writes ``bench/RESULTS.md`` after a full run (its one-thread part, or
with ``--threads all`` its all-cores part, keeping the other).
"""
# The thread environment must be in place before numpy, BLAS or any peer is imported, here and
# in every child process (which inherits it): so it is set before the other imports.
import os
import sys


from bench.runner import ALL, apply_thread_env, parse_threads  # noqa: E402


def _threads_from_argv(argv: list) -> int:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return parse_threads(argv[i + 1])
        if a.startswith("--threads="):
            return parse_threads(a.split("=", 1)[1])
    return 1


_THREADS = _threads_from_argv(sys.argv[1:])

apply_thread_env(_THREADS)

import argparse  # noqa: E402
import json  # noqa: E402
import queue  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

from bench import harness  # noqa: E402
from bench.runner import GROUPS, load_group, run_group  # noqa: E402

HERE = Path(__file__).resolve().parent


def parse_args(argv: list) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few repeats, to check the harness (< 3 minutes)")
    p.add_argument("--only", default="", help="comma-separated groups, e.g. A,C")
    p.add_argument("--json", dest="json_path", help="also write every row to this JSON file")
    p.add_argument("--md", dest="md_path",
                   help="write the markdown report here (default: bench/RESULTS.md after a "
                        "full run of every group; never by default with --quick or --only)")
    p.add_argument("--threads", type=parse_threads, default=1,
                   help="threads per peer (default 1), or 'all': every peer at its default "
                        "threading on every CPU this process may use")
    p.add_argument("--row-timeout", type=float, default=None,
                   help="seconds the group's process may go without progress (an impl's "
                        "build and check, one timing sample) before it is killed and the "
                        "impl running recorded as failed (default 120 quick, 900)")
    p.add_argument("--jobs", type=int, default=None,
                   help="groups run at once, each pinned to its own CPUs (default: 1; with "
                        "--quick, as many as the CPUs allow, since quick numbers are only a "
                        "check of the harness)")
    a = p.parse_args(argv)
    a.groups = [g.strip().upper() for g in a.only.split(",") if g.strip()] or list(GROUPS)
    unknown = [g for g in a.groups if g not in GROUPS]
    if unknown:
        p.error(f"unknown group(s) {unknown}; known: {','.join(GROUPS)}")
    return a


def collect_versions() -> dict:
    """Versions of everything, read in a child process (so this one imports no peer)."""
    try:
        out = subprocess.run([sys.executable, "-m", "bench.peers"], capture_output=True,
                             text=True, timeout=300)
        return json.loads(out.stdout)
    except Exception as exc:                              # noqa: BLE001 - cosmetic
        return {"python": sys.version.split()[0], "versions": f"unavailable ({exc})"}


_PRINT_LOCK = threading.Lock()


def vmc_tree_state() -> str:
    """``git <short hash>`` of the checkout, and whether vmc/ has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, cwd=HERE.parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "vmc"],
                               capture_output=True, text=True, timeout=10,
                               cwd=HERE.parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "no git commit"
    return f"git {head}" + (" + uncommitted changes in vmc/" if dirty else "")


def print_row_progress(r: harness.Row) -> None:
    val = harness.cell_for(r)
    with _PRINT_LOCK:
        print(f"  [{r.group}] {r.case} / {r.impl}: {val}  ({r.wall_s:.1f} s)",
              file=sys.stderr, flush=True)


def cpu_slots(threads: int, jobs: int) -> list:
    """``jobs`` disjoint lists of ``threads`` CPUs, taken from the end of the allowed set
    (``ALL``: one list, every allowed CPU)."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    if threads == ALL:
        return [allowed]
    jobs = max(1, min(jobs, len(allowed) // threads))
    return [allowed[len(allowed) - (i + 1) * threads:len(allowed) - i * threads]
            for i in range(jobs)]


def finish_group(letter: str, rows: list) -> tuple:
    """Ratios and derived columns of one group's rows; prints its table; its section."""
    mod = load_group(letter)
    harness.add_ratios(rows)
    derive = getattr(mod, "derive", None)
    if derive:
        derive(rows)
    title = f"{letter}. {mod.TITLE}"
    with _PRINT_LOCK:
        print("\n" + harness.format_text_table(title, rows, mod.COLUMNS) + "\n", flush=True)
    return title, rows, mod.COLUMNS, getattr(mod, "BLURB", "")


def run_groups(args, timeout: float, slots: list) -> dict:
    """Sections of every selected group, groups run ``len(slots)`` at a time; each table is
    printed as soon as its group is done."""
    free: queue.Queue = queue.Queue()
    for s in slots:
        free.put(s)

    def one(letter: str) -> tuple:
        cpus = free.get()
        try:
            t0 = time.monotonic()
            rows = run_group(letter, args.quick, args.threads, timeout, print_row_progress,
                             cpus)
            section = finish_group(letter, rows)
            print(f"({letter} took {time.monotonic() - t0:.1f} s)", flush=True)
            return section
        finally:
            free.put(cpus)

    if len(slots) == 1:
        return {g: one(g) for g in args.groups}
    # the longest groups first, so that parallel runs end together
    order = sorted(args.groups, key=lambda g: "JEDCIBFAGH".index(g))
    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        futures = {g: pool.submit(one, g) for g in order}
        return {g: futures[g].result() for g in args.groups}


def main(argv: list | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    t_start = time.monotonic()
    jobs = args.jobs or (len(os.sched_getaffinity(0)) if args.quick else 1)
    slots = cpu_slots(args.threads, jobs)
    info = harness.machine_info(args.threads, slots[0] if len(slots) == 1 else slots)
    versions = collect_versions()
    info.update(versions.pop("machine", {}))
    versions["vmc"] = f"{versions.get('vmc', '?')} ({vmc_tree_state()})"
    print(f"vmc benchmarks ({'quick' if args.quick else 'full'}) on {info['cpu']}, "
          f"{info['cores']} cores, {info['threads_used']} thread(s) per peer, groups pinned "
          f"to CPUs {slots}; ISA {info.get('isa', '?')}; BLAS {info.get('blas_core_type', '?')} "
          f"({info.get('openblas_env', '?')}); load average {info['load_average_at_start']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), flush=True)
    timeout = args.row_timeout or (120.0 if args.quick else 900.0)
    results = run_groups(args, timeout, slots)
    sections = [results[g] for g in args.groups]
    all_rows = [r for _, rows, _, _ in sections for r in rows]
    wall = time.monotonic() - t_start
    info["load_average_at_end"] = harness.load_average()
    print(f"\ntotal wall time: {wall:.1f} s")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({"machine": info, "versions": versions, "quick": args.quick,
                       "wall_s": wall, "rows": [r.to_json() for r in all_rows]}, f, indent=1)
        print(f"wrote {args.json_path}")
    md_path = args.md_path
    if md_path is None and not args.quick and set(args.groups) == set(GROUPS):
        md_path = str(HERE / "RESULTS.md")
    if md_path:
        cmd = "python -m bench" + (" --quick" if args.quick else "") + \
            (" --threads all" if args.threads == ALL else
             f" --threads {args.threads}" if args.threads != 1 else "") + \
            (f" --only {','.join(args.groups)}" if set(args.groups) != set(GROUPS) else "")
        text = harness.results_markdown(info, versions, sections, wall, cmd)
        old = Path(md_path).read_text() if Path(md_path).exists() else ""
        Path(md_path).write_text(harness.merge_results(old, text, args.threads == ALL))
        print(f"wrote {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
