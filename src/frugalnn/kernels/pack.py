"""Group-wise k-bit quantization and bit packing: allocating wrappers over the compiled core.

`impl="native"` runs the compiled kernel (serial or AVX2, see `frugalnn.kernels.use_backend`),
`impl="numpy"` the bit-identical reference in `pack_ref`. Layout: csrc/pack/serial.h.
"""
from __future__ import annotations

import numpy as np

from frugalnn import _core
from frugalnn._arrays import require_choice, require_int, threads_arg
from frugalnn.kernels import pack_ref

packed_row_bytes = pack_ref.packed_row_bytes
IMPLS = ("native", "numpy")


def _impl(impl: str):
    return _core.pack if require_choice(impl, "impl", IMPLS) == "native" else pack_ref


def _matrix(a, name: str, dtype) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d array, got shape {a.shape}")
    return np.ascontiguousarray(a)


def pack_codes(codes: np.ndarray, bits: int, *, threads: int | None = None, impl: str = "native") -> np.ndarray:
    """uint8 codes [N, K] in [0, 2^bits) -> packed uint8 [N, ceil(K*bits/8)]."""
    bits = require_int(bits, "bits", 1, 8)
    codes = _matrix(codes, "codes", np.uint8)
    if codes.size and int(codes.max()) >= 1 << bits:
        raise ValueError(f"codes: value {int(codes.max())} does not fit in {bits} bits")
    packed = np.empty((codes.shape[0], packed_row_bytes(codes.shape[1], bits)), np.uint8)
    _impl(impl).pack_codes(codes, bits, packed, threads_arg(threads))
    return packed


def unpack_codes(packed: np.ndarray, bits: int, k: int, *, threads: int | None = None, impl: str = "native") -> np.ndarray:
    bits = require_int(bits, "bits", 1, 8)
    k = require_int(k, "k", 0)
    packed = _matrix(packed, "packed", np.uint8)
    if packed.shape[1] != packed_row_bytes(k, bits):
        raise ValueError(f"packed: expected {packed_row_bytes(k, bits)} bytes per row for K={k} at {bits} bits, "
                         f"got {packed.shape[1]}")
    codes = np.empty((packed.shape[0], k), np.uint8)
    _impl(impl).unpack_codes(packed, bits, codes, threads_arg(threads))
    return codes


def quantize_pack(w: np.ndarray, bits: int, group_size: int, symmetric: bool = True, *,
                  threads: int | None = None, impl: str = "native") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 w [N, K] -> (packed [N, row_bytes], scales [N, K/g], offsets [N, K/g]); w ~= q*scale + offset."""
    bits = require_int(bits, "bits", 1, 8)
    group_size = require_int(group_size, "group_size", 1)
    w = _matrix(w, "w", np.float32)
    n, k = w.shape
    if k % group_size:
        raise ValueError(f"group_size: {group_size} does not divide K = {k}")
    packed = np.empty((n, packed_row_bytes(k, bits)), np.uint8)
    scales = np.empty((n, k // group_size), np.float32)
    offsets = np.empty_like(scales)
    _impl(impl).quantize_pack(w, bits, group_size, bool(symmetric), packed, scales, offsets, threads_arg(threads))
    return packed, scales, offsets


def dequantize_unpack(packed: np.ndarray, scales: np.ndarray, offsets: np.ndarray, bits: int, group_size: int,
                      *, threads: int | None = None, impl: str = "native") -> np.ndarray:
    bits = require_int(bits, "bits", 1, 8)
    group_size = require_int(group_size, "group_size", 1)
    scales = _matrix(scales, "scales", np.float32)
    offsets = _matrix(offsets, "offsets", np.float32)
    if offsets.shape != scales.shape:
        raise ValueError(f"offsets: expected shape {scales.shape} (as scales), got {offsets.shape}")
    n, groups = scales.shape
    packed = _matrix(packed, "packed", np.uint8)
    k = groups * group_size
    if packed.shape != (n, packed_row_bytes(k, bits)):  # before allocating [n, k] from group_size
        raise ValueError(f"packed: expected shape {(n, packed_row_bytes(k, bits))} for {groups} groups of "
                         f"{group_size} at {bits} bits, got {packed.shape}")
    out = np.empty((n, k), np.float32)
    _impl(impl).dequantize_unpack(packed, scales, offsets, bits, group_size, out, threads_arg(threads))
    return out
