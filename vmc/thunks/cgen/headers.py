"""The digest of the C headers generated kernels and the prebuilt runtime include.

Standalone (no vmc imports) so that ``setup.py`` can load it by path: the runtime
extension is built with the digest of the headers it was compiled from, and
``elemwise.runtime()`` refuses a runtime whose digest differs from the headers
the kernels are compiled against now (a stale build would disagree on structs).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER_DIRS = (HERE, HERE.parent.parent)      # vmc/thunks/cgen, vmc (vmc_thunk.h)


def headers_digest() -> str:
    h = hashlib.sha256()
    for d in HEADER_DIRS:
        for p in sorted(d.glob("*.h")):
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()
