"""Numpy reference of `frugalnn._core.pack`: same signatures (outputs passed in), same bits.

The layout and the exact float32 operation order are documented in csrc/pack/serial.h.
"""
from __future__ import annotations

import numpy as np

_F32 = np.float32


def packed_row_bytes(k: int, bits: int) -> int:
    return (k * bits + 7) // 8


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= 8:
        raise ValueError(f"bits: expected 1..8, got {bits}")


def _groups(k: int, group_size: int) -> int:
    if group_size < 1:
        raise ValueError(f"group_size: expected >= 1, got {group_size}")
    if k % group_size:
        raise ValueError(f"group_size: {group_size} does not divide K = {k}")
    return k // group_size


def group_params(w: np.ndarray, bits: int, group_size: int, symmetric: bool):
    """Per-group (scale, offset, inv_scale, bias, bad) for w [N, K]; `bad` marks groups the kernel rejects."""
    n, k = w.shape
    g = w.reshape(n, _groups(k, group_size), group_size)
    levels = _F32((1 << bits) - 1)
    half = levels * _F32(0.5)
    with np.errstate(all="ignore"):
        bad = ~np.isfinite(g).all(axis=2)
        if symmetric:
            scale = np.abs(g).max(axis=2) / half
            offset = -half * scale
        else:
            lo = g.min(axis=2)
            scale = (g.max(axis=2) - lo) / levels
            offset = lo
        bad |= ~(np.isfinite(scale) & np.isfinite(offset) & np.isfinite(levels * scale))
        scale = np.where(bad, _F32(0), scale).astype(_F32)
        offset = np.where(bad, _F32(0), offset).astype(_F32)
        inv = np.zeros_like(scale)
        np.divide(_F32(1), scale, out=inv, where=scale != 0)
        # a scale below 2^-128 has no float32 reciprocal: such a group is one code (serial.h)
        flat = ~np.isfinite(inv)
        scale = np.where(flat, _F32(0), scale).astype(_F32)
        inv = np.where(flat, _F32(0), inv).astype(_F32)
        if symmetric:
            offset = np.where(flat, -half * scale, offset).astype(_F32)
    bias = half if symmetric else _F32(0)
    return scale, offset, inv, bias, bad


def quantize_codes(w: np.ndarray, bits: int, group_size: int, symmetric: bool):
    scale, offset, inv, bias, bad = group_params(w, bits, group_size, symmetric)
    n, k = w.shape
    g = w.reshape(n, k // group_size, group_size)
    with np.errstate(all="ignore"):
        if symmetric:
            t = g * inv[..., None] + bias
        else:
            t = (g - offset[..., None]) * inv[..., None]
        q = np.clip(np.rint(t), _F32(0), _F32((1 << bits) - 1))
    q = np.where(bad[..., None], _F32(0), q)
    return q.astype(np.uint8).reshape(n, k), scale, offset, bad


def pack_codes(codes, bits, packed, threads=-1):
    _check_bits(bits)
    n, k = codes.shape
    planes = (codes[..., None] >> np.arange(bits, dtype=np.uint8)) & 1  # [N, K, bits], LSB first
    stream = planes.reshape(n, k * bits)
    packed[...] = np.packbits(stream, axis=1, bitorder="little")[:, : packed_row_bytes(k, bits)]


def unpack_codes(packed, bits, codes, threads=-1):
    _check_bits(bits)
    n, k = codes.shape
    stream = np.unpackbits(packed, axis=1, bitorder="little")[:, : k * bits].reshape(n, k, bits)
    codes[...] = (stream.astype(np.uint16) << np.arange(bits, dtype=np.uint16)).sum(axis=2).astype(np.uint8)


def quantize_pack(w, bits, group_size, symmetric, packed, scales, offsets, threads=-1):
    _check_bits(bits)
    codes, scale, offset, bad = quantize_codes(w, bits, group_size, symmetric)
    scales[...] = scale
    offsets[...] = offset
    pack_codes(codes, bits, packed)
    if bad.any():
        r, g = np.argwhere(bad)[0]
        raise ValueError(f"w: row {r}, group {g} holds NaN/inf or a range too wide for float32 scales")


def dequantize_unpack(packed, scales, offsets, bits, group_size, out, threads=-1):
    _check_bits(bits)
    n, k = out.shape
    groups = _groups(k, group_size)
    codes = np.empty((n, k), np.uint8)
    unpack_codes(packed, bits, codes)
    q = codes.reshape(n, groups, group_size).astype(_F32)
    out[...] = (q * scales[..., None] + offsets[..., None]).reshape(n, k)
