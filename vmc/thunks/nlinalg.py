"""numpy thunks of ``vmc.tensor.nlinalg``: slogdet, svd, qr, eig, pinv, lstsq."""
from __future__ import annotations

import numpy as np

from vmc.tensor.nlinalg import QR, SVD, Eig, Lstsq, Pinv, SLogDet

from .registry import register


def _as(node, k=0):
    dtype = np.dtype(node.outputs[k].type.dtype)
    return lambda a: a if a.dtype == dtype else a.astype(dtype)


@register(SLogDet)
def slogdet_thunk(node, destroyable):
    conv, dt = _as(node), np.dtype(node.outputs[0].type.dtype)

    def thunk(x):
        sign, logdet = np.linalg.slogdet(conv(x))
        return np.asarray(sign, dt), np.asarray(logdet, dt)
    return thunk


@register(SVD)
def svd_thunk(node, destroyable):
    conv, full, uv = _as(node), node.op.full_matrices, node.op.compute_uv
    if not uv:
        return lambda x: np.linalg.svd(conv(x), full_matrices=full, compute_uv=False)
    return lambda x: tuple(np.linalg.svd(conv(x), full_matrices=full, compute_uv=True))


@register(QR)
def qr_thunk(node, destroyable):
    conv = _as(node)
    mode = node.op.mode
    if mode == "r":
        return lambda x: np.linalg.qr(conv(x), mode="r")
    return lambda x: tuple(np.linalg.qr(conv(x), mode=mode))


@register(Eig)
def eig_thunk(node, destroyable):
    dt = np.dtype(node.outputs[0].type.dtype)
    return lambda x: tuple(a.astype(dt) for a in np.linalg.eig(x))


@register(Pinv)
def pinv_thunk(node, destroyable):
    conv = _as(node)
    return lambda x: np.linalg.pinv(conv(x))


@register(Lstsq)
def lstsq_thunk(node, destroyable):
    conv = _as(node)
    dt = np.dtype(node.outputs[0].type.dtype)

    def thunk(a, b, rcond):
        r = float(rcond)
        x, res, rank, s = np.linalg.lstsq(conv(a), conv(b), rcond=None if r < 0 else r)
        return x, res.astype(dt), np.asarray(rank, np.int64), s.astype(dt)
    return thunk
