"""Numpy reference of `frugalnn._core.dfp`: same signatures (outputs passed in), same bits.

The semantics (chunking, int32 wrap, float order, scaling) are documented in csrc/dfp/serial.h;
this file follows it on whole arrays. Chunk sums are exact: a float64 matmul of int16 values is
exact while every partial sum stays below 2^53 (products are at most 2^30, so chunks up to 2^23
values), an int64 one beyond that. They are then reduced modulo 2^32 into int32, as int32
hardware accumulation does (the identity whenever the chunk is safe).
"""
from __future__ import annotations

import numpy as np

INT32_MAX = 2**31 - 1
_EXACT_F64_CHUNK = 2**23  # chunk * 2^30 < 2^53: every float64 partial sum is an exact integer


def safe_chunk(max_a: int, max_b: int) -> int:
    """Largest chunk whose int32 sums cannot overflow for |a| <= max_a, |b| <= max_b."""
    worst = int(max_a) * int(max_b)
    return 2**63 - 1 if worst == 0 else INT32_MAX // worst


def pow2_pair(scale_exp: int) -> tuple[np.float32, np.float32]:
    """2^s as the product of two normal float32 powers (s1 = clamp(s, -126, 127), s2 = clamp(s - s1, ...))."""
    s1 = min(max(scale_exp, -126), 127)
    s2 = min(max(scale_exp - s1, -126), 127)
    return np.float32(2.0**s1), np.float32(2.0**s2)


def wrap_int32(s: np.ndarray) -> np.ndarray:
    """Exact integer sums (int64) reduced modulo 2^32 into int32 (two's complement)."""
    return s.astype(np.int64).astype(np.uint32).view(np.int32) if s.size else s.astype(np.int32)


def chunk_sums(a: np.ndarray, b: np.ndarray, chunk: int):
    """Yield the exact int64 sums of each K-chunk of a [M, K] @ b [K, N], in chunk order."""
    k = a.shape[1]
    for k0 in range(0, k, chunk):
        ac, bc = a[:, k0:k0 + chunk], b[k0:k0 + chunk]
        if chunk <= _EXACT_F64_CHUNK:
            yield (ac.astype(np.float64) @ bc.astype(np.float64)).astype(np.int64)
        else:
            yield ac.astype(np.int64) @ bc.astype(np.int64)


def _check(a, b, ea, eb, chunk, transpose_b, bias, out, threads):
    for name, x, dt in (("a", a, np.int16), ("b", b, np.int16), ("out", out, np.float32)):
        if not isinstance(x, np.ndarray) or x.dtype != dt:
            raise TypeError(f"{name}: expected dtype {np.dtype(dt)}, got {getattr(x, 'dtype', type(x).__name__)}")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"a {a.shape}, b {b.shape}: expected 2-d arrays")
    k_b, n = (b.shape[1], b.shape[0]) if transpose_b else b.shape
    if k_b != a.shape[1] or out.shape != (a.shape[0], n):
        raise ValueError(f"a {a.shape}, b {b.shape} (transpose_b={transpose_b}), out {out.shape}: shapes do not chain")
    if bias is not None and (bias.dtype != np.float32 or bias.shape != (n,)):
        raise ValueError(f"bias: expected float32 of shape ({n},), got {bias.dtype} {bias.shape}")
    if chunk < 1:
        raise ValueError(f"chunk: expected >= 1, got {chunk}")
    if threads == 0 or threads < -1:
        raise ValueError(f"threads: expected a positive count or -1 (all cores), got {threads}")


def gemm(a, b, ea, eb, chunk, transpose_b, bias, out, threads=-1, allow_overflow=False):
    """out = sum over K-chunks of float32(int32 chunk sum), scaled by 2^(ea+eb), + bias (serial.h)."""
    _check(a, b, ea, eb, chunk, transpose_b, bias, out, threads)
    bk = b.T if transpose_b else b
    m, k = a.shape
    if not allow_overflow and k and out.size:
        max_a, max_b = int(np.abs(a.astype(np.int32)).max()), int(np.abs(b.astype(np.int32)).max())
        safe = safe_chunk(max_a, max_b)
        if min(chunk, k) > safe:
            raise ValueError(f"chunk: {chunk} can overflow int32 with these operands (max|a| = {max_a}, "
                             f"max|b| = {max_b}, K = {k}); the largest safe chunk for them is {safe} "
                             "(pass allow_overflow=True for int32 wrap-around)")
    acc = np.zeros(out.shape, np.float32)
    for s in chunk_sums(a, bk, chunk):
        # int32 -> float64 is exact, so the cast to float32 rounds once (to nearest even), like cvtdq2ps
        acc += wrap_int32(s).astype(np.float64).astype(np.float32)
    p1, p2 = pow2_pair(int(ea) + int(eb))
    with np.errstate(over="ignore"):
        res = (acc * p1) * p2
    if bias is not None:
        res = res + bias
    out[...] = res
