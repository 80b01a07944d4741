"""numpy reference of the decode-step pieces in csrc/llama/ (same signatures as `_core.llama.*`).

RoPE is bit-identical to the compiled versions (float32 products, then the add/subtract, as
torch's complex multiply does). The sum of squares of rms_norm is taken in float64, as the
compiled versions do, so results agree to an ulp. attend, silu_mul and gemv are computed in
float64 and rounded once: the compiled versions sum in float32 in their own order and agree to
float32 rounding (tests state the tolerance).
"""
from __future__ import annotations

import numpy as np


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float, out: np.ndarray) -> None:
    """out = (x * rsqrt(mean(x^2) + eps)) * w   (float32 except the float64 sum of squares)"""
    ss = np.sum(x.astype(np.float64) ** 2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mean = np.float32(ss) / np.float32(x.shape[0])
        r = np.float32(1) / np.sqrt(mean + np.float32(eps), dtype=np.float32)
        out[...] = (x * r) * w


def rope(x: np.ndarray, rope_dim: int, cs: np.ndarray) -> None:
    """In place on x [heads, D]: pairs (2i, 2i+1), i < rope_dim / 2, times (cos_i + j sin_i)."""
    a, b = x[:, 0:rope_dim:2].copy(), x[:, 1:rope_dim:2].copy()
    c, s = cs[:, 0], cs[:, 1]
    with np.errstate(invalid="ignore", over="ignore"):
        x[:, 0:rope_dim:2] = a * c - b * s
        x[:, 1:rope_dim:2] = a * s + b * c


def attend(q: np.ndarray, keys: np.ndarray, values: np.ndarray, scale: float, out: np.ndarray) -> None:
    """out[j] = softmax(scale * keys @ q[j]) @ values, in float64 (max subtracted first)."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = (q.astype(np.float64) @ keys.astype(np.float64).T) * np.float64(np.float32(scale))
        p = np.exp(s - s.max(axis=1, keepdims=True))
        out[...] = (p @ values.astype(np.float64)) / p.sum(axis=1, keepdims=True)


def silu_mul(gate: np.ndarray, up: np.ndarray, out: np.ndarray) -> None:
    """out = gate / (1 + exp(-gate)) * up, in float64."""
    g = gate.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        out[...] = g / (1.0 + np.exp(-g)) * up


def gemv(w: np.ndarray, x: np.ndarray, out: np.ndarray, threads: int = -1) -> None:
    """out = w @ x in float64 (w [M, K], x [K])."""
    with np.errstate(invalid="ignore", over="ignore"):
        out[...] = w.astype(np.float64) @ x.astype(np.float64)
