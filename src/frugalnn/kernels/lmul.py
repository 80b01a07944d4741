"""L-Mul kernels: allocating wrappers over the compiled core on canonical float32 shapes.

`impl="native"` runs the compiled kernel (serial or AVX2, see `frugalnn.kernels.use_backend`),
`impl="numpy"` the bit-identical reference in `lmul_ref`. Rules and summation order:
csrc/lmul/serial.h. The user-facing functions (any shapes, numpy or torch) are in
`frugalnn.lmul.arith`.
"""
from __future__ import annotations

import numpy as np

from frugalnn import _core
from frugalnn._arrays import float32_array, require_choice, threads_arg
from frugalnn.kernels import lmul_ref

IMPLS = ("native", "numpy")
paper_offset = lmul_ref.paper_offset


def _impl(impl: str):
    return _core.lmul if require_choice(impl, "impl", IMPLS) == "native" else lmul_ref


def elementwise(a: np.ndarray, b: np.ndarray, mantissa_bits: int, nearest: bool, offset: int, *,
                threads: int | None = None, impl: str = "native") -> np.ndarray:
    """float32 [n] x float32 [n] -> float32 [n] L-Mul products."""
    a, b = float32_array(a, "a", 1), float32_array(b, "b", 1)
    out = np.empty_like(a)
    _impl(impl).elementwise(a, b, mantissa_bits, bool(nearest), offset, out, threads_arg(threads))
    return out


def matmul(a: np.ndarray, b: np.ndarray, mantissa_bits: int, nearest: bool, offset: int, *,
           transpose_b: bool = False, threads: int | None = None, impl: str = "native",
           force_general: bool = False) -> np.ndarray:
    """a [B, M, K] x b [B, K, N] (or [B, N, K] with transpose_b) -> [B, M, N], products by L-Mul."""
    a, b = float32_array(a, "a", 3), float32_array(b, "b", 3)
    n = b.shape[1] if transpose_b else b.shape[2]
    k_b = b.shape[2] if transpose_b else b.shape[1]
    if b.shape[0] != a.shape[0] or k_b != a.shape[2]:
        raise ValueError(f"b: shape {b.shape} (transpose_b={transpose_b}) does not chain with a {a.shape}")
    out = np.empty((a.shape[0], a.shape[1], n), np.float32)
    _impl(impl).matmul(a, b, mantissa_bits, bool(nearest), offset, bool(transpose_b), out, threads_arg(threads),
                       bool(force_general))
    return out
