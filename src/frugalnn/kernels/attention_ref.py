"""Numpy reference of the fused attention kernel: same signature as `_core.attention`.

Exact softmax attention in float64 (the kernel's online softmax must match it to float32
rounding), computed a block of queries at a time so the reference itself stays usable at a few
thousand tokens. `exp` is numpy's float32 exp, the yardstick for the kernel's vectorised exp.
"""
from __future__ import annotations

import numpy as np

BLOCK_Q = 48
BLOCK_K = 128
MAX_SUB_BLOCKS = 4
VALUE_LANES = 4


def workspace_bytes(e: int, ev: int) -> int:
    # The compiled kernel's formula (driver.h workspace_floats): per query block Q^T, accumulator
    # (Ev rounded up to whole 4-column strips), m, l, alpha; one score tile; two packed value tiles.
    # The reference itself materialises a [256, S] score block instead.
    evp = -(-ev // VALUE_LANES) * VALUE_LANES
    return 4 * (MAX_SUB_BLOCKS * (e * BLOCK_Q + evp * BLOCK_Q + 3 * BLOCK_Q) + BLOCK_K * BLOCK_Q + 2 * BLOCK_K * evp)


def fused_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool, scale: float, out: np.ndarray,
                    threads: int = -1) -> None:
    """out[n] = softmax(scale * q[n] k[g(n)]^T (+ causal mask)) v[g(n)], g(n) = n // (N / Nk)."""
    n, l, _ = q.shape
    nk, s, _ = k.shape
    group = n // nk
    keys = np.arange(s)
    for h in range(n):
        kk = k[h // group].astype(np.float64)
        vv = v[h // group].astype(np.float64)
        for q0 in range(0, l, 256):
            qq = q[h, q0:q0 + 256].astype(np.float64)
            scores = scale * (qq @ kk.T)
            if causal:
                rows = np.arange(q0, q0 + qq.shape[0])[:, None]
                scores = np.where(keys[None, :] <= rows, scores, -np.inf)
            scores = scores - scores.max(axis=1, keepdims=True)
            p = np.exp(scores)
            out[h, q0:q0 + qq.shape[0]] = (p @ vv) / p.sum(axis=1, keepdims=True)


def exp(x: np.ndarray, y: np.ndarray) -> None:
    np.exp(x, out=y)
