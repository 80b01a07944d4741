"""Numpy reference of the MixPE group GEMM (csrc/mixpe/serial.h), same layout and operation order.

Weights: uint4 q, one float32 scale s and uint8 zero z per row and group of `group` k (asymmetric,
the group's range widened to include 0 so that z is an exact integer). W4A8 activations: int8 per
token, symmetric. The integer part of every group, sum_k q*aq - z*asum, is exact (int64 here, int32
in C++: the same integers); the float part is acc = fma(s, d, acc) per group, emulated in float64
then rounded to float32 (bit-exact whenever s*d + acc is exact in float64, e.g. unit scales).
"""
from __future__ import annotations

import numpy as np

ROWS = 16       # csrc/mixpe/layout.h kRows
QUAD = 4        # kQuad
GROUPS = (32, 64, 128)


def check_group(group: int) -> int:
    if isinstance(group, bool) or not isinstance(group, (int, np.integer)) or int(group) not in GROUPS:
        raise ValueError(f"group: expected one of {GROUPS}, got {group!r}")
    return int(group)


def padded(k: int, group: int) -> int:
    return -(-k // group) * group


def quantize_weights(w: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """w [N, K] float -> q [N, Kp] uint8 in 0..15 (padding 0), s [N, G] float32, z [N, G] uint8."""
    group = check_group(group)
    w = np.asarray(w, np.float32)
    if w.ndim != 2:
        raise ValueError(f"w: expected a 2-d array, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("w: non-finite values cannot be quantized")
    n, k = w.shape
    kp = padded(k, group)
    g = kp // group
    wpad = np.zeros((n, kp), np.float32)
    wpad[:, :k] = w
    # padding must not widen a group's range: fill it with the group's first real value
    if kp > k and k > 0:
        last = (k - 1) // group
        wpad[:, k:] = w[:, last * group:last * group + 1]
    grp = wpad.reshape(n, g, group)
    lo = np.minimum(grp.min(axis=2), 0.0)
    hi = np.maximum(grp.max(axis=2), 0.0)
    s = ((hi - lo) / np.float32(15)).astype(np.float32)
    s = np.where(s > 0, s, np.float32(1)).astype(np.float32)
    z = np.clip(np.rint(-lo / s), 0, 15).astype(np.uint8)
    q = np.clip(np.rint(grp / s[..., None]) + z[..., None], 0, 15).astype(np.uint8).reshape(n, kp)
    q[:, k:] = 0
    return q, s, z


def dequantize(q: np.ndarray, s: np.ndarray, z: np.ndarray, group: int, k: int) -> np.ndarray:
    n, kp = q.shape
    w = (q.reshape(n, kp // group, group).astype(np.float32) - z[..., None]) * s[..., None]
    return w.reshape(n, kp)[:, :k].astype(np.float32)


def pack_weights(q: np.ndarray, s: np.ndarray, z: np.ndarray, group: int):
    """(q, s, z) -> (wp, sp, zp) in csrc/mixpe/layout.h's layout (rows padded to a multiple of 16)."""
    n, kp = q.shape
    g = kp // group
    strips = -(-n // ROWS)
    npad = strips * ROWS
    qp = np.zeros((npad, kp), np.uint8)
    qp[:n] = q
    quads = kp // QUAD
    qb = qp.reshape(strips, ROWS, quads, QUAD).transpose(0, 2, 1, 3)  # [strip, quad, row, 4]
    wp = (qb[:, :, :8] | (qb[:, :, 8:] << 4)).reshape(strips, quads, 32).astype(np.uint8)
    sp = np.zeros((npad, g), np.float32)
    sp[:n] = s
    zp = np.zeros((npad, g), np.uint8)
    zp[:n] = z
    sp = np.ascontiguousarray(sp.reshape(strips, ROWS, g).transpose(0, 2, 1))
    zp = np.ascontiguousarray(zp.reshape(strips, ROWS, g).transpose(0, 2, 1))
    return np.ascontiguousarray(wp), sp, zp


def unpack_weights(wp: np.ndarray, sp: np.ndarray, zp: np.ndarray, n: int):
    strips, quads = wp.shape[:2]
    b = wp.reshape(strips, quads, 8, QUAD)
    qb = np.concatenate([b & 0xF, b >> 4], axis=2)  # [strip, quad, row, 4]
    q = qb.transpose(0, 2, 1, 3).reshape(strips * ROWS, quads * QUAD)[:n]
    s = sp.transpose(0, 2, 1).reshape(strips * ROWS, -1)[:n]
    z = zp.transpose(0, 2, 1).reshape(strips * ROWS, -1)[:n]
    return q, s, z


def quantize_activations(x: np.ndarray, group: int):
    """x [M, K] float32 -> aq [M, Kp] int8, asum [M, G] int32, sa [M] float32 (serial.h's order)."""
    x = np.asarray(x, np.float32)
    m, k = x.shape
    kp = padded(k, group)
    amax = np.fmax.reduce(np.abs(x), axis=1, initial=0.0).astype(np.float32) if k else np.zeros(m, np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    aq = np.zeros((m, kp), np.int8)
    with np.errstate(invalid="ignore"):
        v = np.rint(x * inv[:, None])
    aq[:, :k] = np.clip(np.nan_to_num(v, nan=0.0), -127, 127).astype(np.int8)  # NaN -> 0 (serial.h)
    asum = aq.reshape(m, kp // group, group).astype(np.int32).sum(axis=2).astype(np.int32)
    sa = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
    return aq, asum, sa


def group_integers(q: np.ndarray, z: np.ndarray, aq: np.ndarray, asum: np.ndarray, group: int) -> np.ndarray:
    """d[m, n, g] = sum_{k in g} q[n,k] aq[m,k] - z[n,g] asum[m,g], exact (int64)."""
    n, kp = q.shape
    m = aq.shape[0]
    g = kp // group
    qg = q.reshape(n, g, group).astype(np.int64)
    ag = aq.reshape(m, g, group).astype(np.int64)
    dots = np.einsum("ngk,mgk->mng", qg, ag)
    return dots - z.astype(np.int64)[None] * asum.astype(np.int64)[:, None, :]


def _fma_groups(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """acc = float32(s[n,g] * d[m,n,g] + acc) for g in order (float64 arithmetic, one rounding)."""
    acc = np.zeros(d.shape[:2], np.float32)
    s64 = s.astype(np.float64)
    for g in range(d.shape[2]):
        acc = (s64[None, :, g] * d[:, :, g].astype(np.float64) + acc.astype(np.float64)).astype(np.float32)
    return acc


def gemm_w4a8(q, s, z, group, aq, asum, sa, bias=None) -> np.ndarray:
    """y [M, N] = sa * sum_g s_g (sum q aq - z asum) (+ bias), float32."""
    return gemm_from_integers(group_integers(q, z, aq, asum, group), s, sa, bias)


def gemm_from_integers(d, s, sa, bias=None) -> np.ndarray:
    """The float part: acc = fma(s_g, d_g, acc) per group, y = acc * sa (+ bias)."""
    y = (_fma_groups(s, d) * sa[:, None]).astype(np.float32)
    if bias is not None:
        y = (y + np.asarray(bias, np.float32)[None]).astype(np.float32)
    return y


def gemm_w4a16(q, s, z, group, x, bias=None) -> np.ndarray:
    """x [M, K] float32 (fp16/bf16 values): y = sum_g s_g (sum q x - z sum x) (+ bias)."""
    x = np.asarray(x, np.float32)
    n, kp = q.shape
    m, k = x.shape
    g = kp // group
    xp = np.zeros((m, kp), np.float32)
    xp[:, :k] = x
    xg = xp.reshape(m, g, group).astype(np.float64)
    dot = np.einsum("ngk,mgk->mng", q.reshape(n, g, group).astype(np.float64), xg)
    xs = xg.sum(axis=2)
    d = dot - z.astype(np.float64)[None] * xs[:, None, :]
    acc = np.zeros((m, n), np.float64)
    for gi in range(g):
        acc = acc + s.astype(np.float64)[None, :, gi] * d[:, :, gi]
    y = acc.astype(np.float32)
    if bias is not None:
        y = (y + np.asarray(bias, np.float32)[None]).astype(np.float32)
    return y
