"""Numpy reference of `frugalnn._core.lmul`: same signatures (outputs passed in), same bits.

The rules (operand preparation, combination, summation order) are documented in
csrc/lmul/serial.h; this file follows it line by line on uint32 bit patterns, with the
exponent arithmetic done in int64 so that no step can wrap.
"""
from __future__ import annotations

import numpy as np

ABS, SIGN, INF, QNAN, MIN_NORMAL = 0x7FFFFFFF, 0x80000000, 0x7F800000, 0x7FC00000, 0x00800000


def paper_offset(mantissa_bits: int) -> int:
    """The paper's l(m): m for m <= 3, 3 for m = 4, 4 above."""
    return mantissa_bits if mantissa_bits <= 3 else (3 if mantissa_bits == 4 else 4)


def offset_bits(offset: int) -> int:
    """OFFSET = (127 << 23) - (1 << (23 - l)): the exponent bias, less the 2^-l mantissa term."""
    return (127 << 23) - (1 << (23 - offset))


def _check(mantissa_bits: int, offset: int) -> None:
    if not 1 <= mantissa_bits <= 23:
        raise ValueError(f"mantissa_bits: expected 1..23, got {mantissa_bits}")
    if not 0 <= offset <= 23:
        raise ValueError(f"offset: expected 0..23, got {offset}")


def prepare_operand(bits: np.ndarray, mantissa_bits: int, nearest: bool) -> np.ndarray:
    """uint32 bit patterns -> prepared operands: canonical NaN, signed zero for |x| < 2^-126, m mantissa bits."""
    u = bits.astype(np.int64)
    a, s = u & ABS, u & SIGN
    drop = 23 - mantissa_bits
    r = a
    if nearest and drop > 0:
        r = r + ((1 << (drop - 1)) - 1) + ((r >> drop) & 1)
    r = (r & ~((1 << drop) - 1)) | s
    r = np.where(a < MIN_NORMAL, s, r)
    r = np.where(a > INF, QNAN, r)
    return r.astype(np.uint32)


def combine(x: np.ndarray, y: np.ndarray, offset: int) -> np.ndarray:
    """Prepared operands (uint32, broadcastable) -> product bits (uint32)."""
    x, y = x.astype(np.int64), y.astype(np.int64)
    ax, ay, s = x & ABS, y & ABS, (x ^ y) & SIGN
    nan = (ax > INF) | (ay > INF)
    zero = (ax == 0) | (ay == 0)
    inf = (ax == INF) | (ay == INF)
    d = ax + ay - offset_bits(offset)
    mag = np.where(d < MIN_NORMAL, 0, np.where(d >= INF, INF, d))
    mag = np.where(inf, INF, mag)
    mag = np.where(zero, 0, mag)
    r = np.where(nan | (zero & inf), QNAN, mag | s)
    return r.astype(np.uint32)


def lmul_bits(a: np.ndarray, b: np.ndarray, mantissa_bits: int, nearest: bool, offset: int) -> np.ndarray:
    """float32 arrays (broadcastable) -> float32 L-Mul products."""
    x = prepare_operand(np.asarray(a, np.float32).view(np.uint32), mantissa_bits, nearest)
    y = prepare_operand(np.asarray(b, np.float32).view(np.uint32), mantissa_bits, nearest)
    return combine(x, y, offset).view(np.float32)


def elementwise(a, b, mantissa_bits, nearest, offset, out, threads=-1):
    _check(mantissa_bits, offset)
    if a.ndim != 1 or b.shape != a.shape or out.shape != a.shape:
        raise ValueError(f"a, b, out: expected equal 1-d shapes, got {a.shape}, {b.shape}, {out.shape}")
    out[...] = lmul_bits(a, b, mantissa_bits, nearest, offset)


def matmul(a, b, mantissa_bits, nearest, offset, transpose_b, out, threads=-1, force_general=False):
    """out[e] = sum_k lmul(a[e, :, k], b[e, k, :]), summed in k order from -0.0 (see serial.h)."""
    _check(mantissa_bits, offset)
    batch, m, k = a.shape
    bk = b.transpose(0, 2, 1) if transpose_b else b
    if bk.shape[:2] != (batch, k) or out.shape != (batch, m, bk.shape[2]):
        raise ValueError(f"a {a.shape}, b {b.shape} (transpose_b={transpose_b}), out {out.shape}: shapes do not chain")
    x = prepare_operand(a.view(np.uint32), mantissa_bits, nearest)
    y = prepare_operand(np.ascontiguousarray(bk).view(np.uint32), mantissa_bits, nearest)
    acc = np.full(out.shape, -0.0, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for kk in range(k):
            acc += combine(x[:, :, kk, None], y[:, None, kk, :], offset).view(np.float32)
    acc[np.isnan(acc)] = np.uint32(QNAN).view(np.float32)
    if k == 0:
        acc[...] = 0.0
    out[...] = acc
