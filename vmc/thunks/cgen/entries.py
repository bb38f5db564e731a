"""The files of the compile cache: integrity, last use, and a size bound.

**Integrity.** A compiled library is loaded with ``dlopen``, which maps the
file: a file cut short or scrambled after it was written (a full disk, a
crash of the file system, a stray ``truncate``) made every later process
that loaded it die with SIGBUS, and it never healed. Each library is written
with a seal beside it (``<file>.sum``: its size and SHA-256); ``intact``
checks the seal before anything is loaded, and the caller rebuilds an entry
that fails (an entry written before seals existed is rebuilt once).

**Last use and the bound.** Every entry (a library with its source, seal and
lock; an optimized graph; an alias record) counts towards
``config.compiledir_max_mb``. A load touches the entry's files (their mtime
is the last use); when writing would pass the bound, the least recently used
entries are removed until the cache is under BOUND_LOW of it. Sizes are the
disk space files take (blocks: an optimized graph of 2 kB takes 4 kB). The
total is kept in the file USAGE (under a lock: every process writes it), so
that a write costs no walk of a directory of thousands of entries (a walk of
380,000 files takes about 12 s here); the directory is walked when that file
is missing and at each eviction, which corrects the total for files removed
by hand. Removing an entry that another process has loaded is safe: its
mapping outlives the file.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path

PREFIX = "vmcg_"          # every file the cache writes starts with it
SEAL = ".sum"
BOUND_LOW = 0.8           # eviction stops below this share of the bound
USAGE = PREFIX + "usage"  # the bytes the entries take

_lock = threading.Lock()


# ------------------------------------------------------------------ integrity

def seal_text(path: Path) -> str:
    data = path.read_bytes()
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def seal(path: Path, final: Path) -> None:
    """Write the seal of ``path`` (to be renamed to ``final``) beside ``final``."""
    from .cache import write_atomic
    write_atomic(final.with_name(final.name + SEAL), seal_text(path).encode())


def intact(path: Path) -> bool:
    """Whether ``path`` is what was written: its size and hash match its seal."""
    try:
        want = path.with_name(path.name + SEAL).read_text().split()
        if len(want) != 2 or int(want[0]) != path.stat().st_size:
            return False
        return seal_text(path).split()[1] == want[1]
    except (OSError, ValueError):
        return False


# --------------------------------------------------------- last use and bound

def entry_of(name: str) -> str:
    """The entry a file belongs to: its name up to the first dot."""
    return name.split(".", 1)[0]


def touch(path: Path) -> None:
    """Note a use of ``path``'s entry (its files' mtimes order the evictions)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def limit_bytes() -> float:
    from vmc.config import config
    return float(config.compiledir_max_mb) * 2 ** 20


def _scan(d: Path) -> dict:
    """entry -> [bytes, last use, files] for the entries in ``d``."""
    groups = {}
    try:
        it = os.scandir(d)
    except OSError:
        return groups
    with it:
        for e in it:
            if (not e.name.startswith(PREFIX) or e.name.endswith(".tmp")
                    or entry_of(e.name) == USAGE):
                continue
            try:
                if not e.is_file(follow_symlinks=False):
                    continue            # a build's temporary directory
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            g = groups.setdefault(entry_of(e.name), [0, 0.0, []])
            g[0] += disk_bytes(st)
            g[1] = max(g[1], st.st_mtime)
            g[2].append(e.path)
    return groups


def disk_bytes(st) -> int:
    """The space a file takes on disk (its size where blocks are unknown)."""
    blocks = getattr(st, "st_blocks", None)
    return st.st_size if blocks is None else blocks * 512


def usage(d: Path) -> int:
    """Bytes the entries in ``d`` hold."""
    return sum(g[0] for g in _scan(d).values())


def note_write(d: Path, paths, keep: str) -> None:
    """Count the files ``paths`` just written into entry ``keep`` of ``d``;
    evict the least recently used entries (never ``keep``) when the bound
    is passed."""
    from .cache import _flock, write_atomic
    limit = limit_bytes()
    nbytes = 0
    for p in paths:
        with contextlib.suppress(OSError):
            nbytes += disk_bytes(os.stat(p))
    with _lock, _flock(d / (USAGE + ".lock")):
        try:
            total = int((d / USAGE).read_text()) + nbytes
        except (OSError, ValueError):
            total = usage(d)
        if total > limit:
            total = evict(d, BOUND_LOW * limit, keep)
        write_atomic(d / USAGE, str(total).encode())


def evict(d: Path, target: float, keep: str = "") -> int:
    """Remove the least recently used entries of ``d`` until they hold at
    most ``target`` bytes; returns the bytes left."""
    groups = _scan(d)
    total = sum(g[0] for g in groups.values())
    for name, (size, _, files) in sorted(groups.items(), key=lambda kv: kv[1][1]):
        if total <= target:
            break
        if name == keep:
            continue
        for f in files:
            with contextlib.suppress(OSError):
                os.unlink(f)
        total -= size
    return total
