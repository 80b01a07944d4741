"""Why Das et al. accumulate in chunks: how often an int32 accumulator overflows on a network's real
DFP16 operands, without chunking and with it.

For one GEMM A [M, K] @ B [K, N] (int16 mantissas captured from a training step), sampled outputs
(i, j) are recomputed exactly in int64:
  wrong       the whole K-sum lies outside int32: an unchunked int32 accumulator (which wraps) returns
              a wrong value
  leaves      some partial sum, in K order, leaves the int32 range (a saturating or trapping
              accumulator would fail, a wrapping one may still recover)
  chunk c     some sum of a K-chunk of c values lies outside int32 (the chunked kernel's failure mode)
"""
from __future__ import annotations

import numpy as np

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
_BUDGET = 1 << 24  # int64 products held at once (128 MiB)


def _outside(s: np.ndarray) -> np.ndarray:
    return (s > INT32_MAX) | (s < INT32_MIN)


def overflow_stats(a: np.ndarray, b: np.ndarray, chunks=(31,), samples: int = 2048, rng=None) -> dict:
    """Fractions of sampled outputs of a @ b that overflow int32: unchunked ('wrong', 'leaves') and
    for each chunk length; also max |sum| / 2^31."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.int16 or b.dtype != np.int16 or a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"a {a.dtype} {a.shape}, b {b.dtype} {b.shape}: expected int16 [M, K] and [K, N]")
    m, k = a.shape
    n = b.shape[1]
    if m * n == 0 or k == 0:
        raise ValueError(f"a {a.shape}, b {b.shape}: expected a non-empty product")
    rng = np.random.default_rng(rng)
    s = int(min(samples, m * n, max(1, _BUDGET // k)))
    flat = rng.choice(m * n, size=s, replace=False)
    rows, cols = flat // n, flat % n
    p = a[rows].astype(np.int64) * b[:, cols].T.astype(np.int64)  # [s, K]
    total = p.sum(1)
    prefix_out = _outside(np.cumsum(p, axis=1)).any(1)
    out = {"K": k, "samples": s, "wrong": float(_outside(total).mean()), "leaves": float(prefix_out.mean()),
           "max_sum_over_2^31": float(np.abs(total).max() / 2 ** 31)}
    for c in chunks:
        pad = (-k) % c
        sums = np.pad(p, ((0, 0), (0, pad))).reshape(s, -1, c).sum(2)
        out[f"chunk {c}"] = float(_outside(sums).any(1).mean())
    return out
