"""`matmul(x, w, threads=None)`: x [..., K] times a LUTWeight [M, K] -> [..., M] (x @ w.T).

x may be numpy or a torch CPU tensor (the answer comes back in kind, float32). NaN/inf in x
propagate exactly as in a dense float32 matmul (csrc/lut/driver.h).
"""
from __future__ import annotations

import numpy as np

from frugalnn import _core
from frugalnn._arrays import from_numpy, require_floating, threads_arg, to_numpy
from frugalnn.kernels import lut as lutk
from frugalnn.lut import tune
from frugalnn.lut.weight import LUTWeight


def resolve_threads(threads) -> int:
    t = threads_arg(threads)
    return _core.hardware_threads() if t == -1 else t


def matmul_numpy(x: np.ndarray, w: LUTWeight, threads: int, config: dict | None = None) -> np.ndarray:
    """x [N, K] float32 (C-contiguous) -> [N, M]; `threads` already resolved (>= 1)."""
    m, _ = w.shape
    cfg = config or tune.config_for(w, x.shape[0], threads)
    zt = w.ws if w.zt is None else w.zt
    return lutk.matmul(x, w.packed, w.ws, zt, m, w.bits, w.group_size, w.zt is not None, threads=threads,
                       units=cfg["units"], cols=cfg["cols"], col_block=cfg["col_block"])


def matmul(x, w: LUTWeight, threads: int | None = None):
    """x [..., K] @ w.T -> [..., M] with the T-MAC lookup-table kernel."""
    if not isinstance(w, LUTWeight):
        raise TypeError(f"w: expected a LUTWeight, got {type(w).__name__}")
    a, as_tensor = to_numpy(x, "x")
    require_floating(a, "x")
    m, k = w.shape
    if a.ndim < 1 or a.shape[-1] != k:
        raise ValueError(f"x: expected shape [..., {k}] to multiply a {m}x{k} weight, got {a.shape}")
    lead = a.shape[:-1]
    a2 = np.ascontiguousarray(a.reshape(-1, k), np.float32)
    out = matmul_numpy(a2, w, resolve_threads(threads))
    return from_numpy(out.reshape(*lead, m), as_tensor)
