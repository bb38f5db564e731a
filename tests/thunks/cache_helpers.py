"""A fresh compile cache for a test, how many builds it logged, and the vector
widths this CPU can be tested at."""
import contextlib
import os
from pathlib import Path

from vmc.thunks.cgen import cache
from vmc.thunks.cgen.cache import isa


@contextlib.contextmanager
def compiledir_at(path: Path):
    """Point the cache at ``path``: through vmc.config when it has the option."""
    old = os.environ.get("VMC_COMPILEDIR")
    os.environ["VMC_COMPILEDIR"] = str(path)
    try:
        from vmc.config import config
    except ImportError:
        config = None
    try:
        if config is not None and hasattr(config, "compiledir"):
            with config.change(compiledir=str(path)):
                yield path
        else:
            yield path
    finally:
        if old is None:
            os.environ.pop("VMC_COMPILEDIR", None)
        else:
            os.environ["VMC_COMPILEDIR"] = old


def builds(d: Path, hint: str = "") -> int:
    log = d / cache.BUILD_LOG
    return sum(hint in line for line in log.read_text().splitlines()) if log.exists() else 0


def vector_widths():
    """(level, VMC_CFLAGS) for this CPU's widest vector ISA (``isa()``), then each
    narrower x86 level pinned through VMC_CFLAGS (AVX2+FMA, then SSE)."""
    level = isa()[0]
    out = [(level, "")]
    if level == "avx512":
        out.append(("avx2", "-mno-avx512f"))
    if level in ("avx512", "avx2", "avx"):
        out.append(("sse", "-mno-avx"))
    return out
