"""``config.threads`` applied to what runs on the CPU: the elementwise runtime's pool
(vmc/thunks/cgen/vmc_pool.h) and the BLAS libraries' own threads.

A compiled function runs one thunk at a time, so the pool and BLAS never work at once:
both get ``config.threads`` and together they use that many cores. BLAS follows through
threadpoolctl (every loaded BLAS: numpy's and scipy's OpenBLAS are two libraries). At
the default (the CPUs this process may use, which is also OpenBLAS's own default) nothing
is called, so ``import vmc`` pays for threadpoolctl only when the setting is changed.
"""
from __future__ import annotations

from vmc.config import _default_threads, config

_blas_state = {"applied": None}


def _blas_threads(n: int) -> None:
    if _blas_state["applied"] is None and n == _default_threads():
        return                      # OpenBLAS already uses that many
    if _blas_state["applied"] == n:
        return
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=n, user_api="blas")
    _blas_state["applied"] = n


def follow_config(runtime=None) -> None:
    """Make BLAS (and ``runtime``, the elementwise driver, once it is loaded) follow
    ``config.threads`` from now on."""
    if runtime is not None:
        config.watch("threads", runtime.set_threads)
    elif not _blas_state.get("watched"):
        _blas_state["watched"] = True
        config.watch("threads", _blas_threads)
