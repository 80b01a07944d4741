"""What the MixPE processing element does, in numpy: a 4-bit weight times an activation as
shift-and-add over the weight's bits, then dequantization after the group sum.

    q * a = sum_{i<4} bit_i(q) * (a << i)          int8 activations: an integer shift
    q * a = sum_{i<4} bit_i(q) * (a * 2^i)          fp16 activations: 2^i is an add of i to the
                                                    exponent field (no multiplier)

`shift_add_matmul` builds every partial product that way and `multiply_matmul` with a multiplier;
both then reduce identically (exact integer sums for int8; float64 sums in k order for fp16, which
hold every fp16 * uint4 product exactly), so the two are equal bit for bit. Speed is irrelevant.
"""
from __future__ import annotations

import numpy as np

from frugalnn.kernels import mixpe_ref


def _exponent_shift(a16: np.ndarray, i: int) -> np.ndarray:
    """a * 2^i for float16 a, as the PE does it: add i to the 5-bit exponent field of a normal
    number; zeros stay zero; subnormals (exponent field 0) and results that would leave the
    fp16 range are widened first (the PE's adder tree is wider than fp16: float64 here)."""
    bits = a16.view(np.uint16).astype(np.int32)
    exp = (bits >> 10) & 0x1F
    shifted = (bits + (i << 10)).astype(np.uint16).view(np.float16).astype(np.float64)
    exact = a16.astype(np.float64) * float(2 ** i)
    normal = (exp >= 1) & (exp + i <= 30)
    return np.where(normal, shifted, exact)


def _partials(q: np.ndarray, a: np.ndarray, shift_add: bool) -> np.ndarray:
    """products[m, n, k] of q [N, Kp] (uint4) and a [M, Kp] (int8 or float16)."""
    integer = a.dtype == np.int8
    if not shift_add:
        if integer:
            return q.astype(np.int64)[None] * a.astype(np.int64)[:, None]
        return q.astype(np.float64)[None] * a.astype(np.float64)[:, None]
    total = np.zeros((a.shape[0], q.shape[0], q.shape[1]), np.int64 if integer else np.float64)
    for i in range(4):
        bit = ((q >> i) & 1).astype(bool)[None]                      # [1, N, Kp]
        term = (a.astype(np.int64) << i) if integer else _exponent_shift(a, i)
        total = total + np.where(bit, term[:, None], 0)
    return total


def _matmul(x, q, s, z, group, act_bits, shift_add, bias):
    x = np.asarray(x)
    n, kp = q.shape
    m, k = x.shape
    g = kp // group
    if act_bits == 8:
        aq, asum, sa = mixpe_ref.quantize_activations(np.asarray(x, np.float32), group)
        prods = _partials(q, aq, shift_add)
        d = prods.reshape(m, n, g, group).sum(axis=3) - z.astype(np.int64)[None] * asum.astype(np.int64)[:, None]
        return mixpe_ref.gemm_from_integers(d, s, sa, bias)
    a16 = np.zeros((m, kp), np.float16)
    a16[:, :k] = np.asarray(x, np.float16)
    prods = _partials(q, a16, shift_add).reshape(m, n, g, group)
    dot = np.zeros((m, n, g), np.float64)
    for j in range(group):  # k order, like the PE's accumulator
        dot = dot + prods[..., j]
    asum = a16.astype(np.float64).reshape(m, g, group).sum(axis=2)
    d = dot - z.astype(np.float64)[None] * asum[:, None]
    y = np.zeros((m, n), np.float64)
    for gi in range(g):
        y = y + s.astype(np.float64)[None, :, gi] * d[:, :, gi]
    y = y.astype(np.float32)
    return y if bias is None else (y + np.asarray(bias, np.float32)).astype(np.float32)


def _check(x, w, group, act_bits):
    group = mixpe_ref.check_group(group)
    if act_bits not in (8, 16):
        raise ValueError(f"act_bits: expected 8 or 16, got {act_bits!r}")
    w = np.asarray(w, np.float32)
    x = np.asarray(x)
    if w.ndim != 2 or x.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"x {x.shape} and w {w.shape}: expected x [M, K] and w [N, K]")
    return x, w, group


def shift_add_matmul(x, w, group: int = 128, act_bits: int = 8, bias=None) -> np.ndarray:
    """y = x @ w.T with w quantized to uint4 per group (asymmetric) and x to int8 per token
    (act_bits=8) or float16 (act_bits=16), every weight product made by shift-and-add."""
    x, w, group = _check(x, w, group, act_bits)
    q, s, z = mixpe_ref.quantize_weights(w, group)
    return _matmul(x, q, s, z, group, act_bits, True, bias)


def multiply_matmul(x, w, group: int = 128, act_bits: int = 8, bias=None) -> np.ndarray:
    """The same quantized product with a multiplier: shift_add_matmul's twin."""
    x, w, group = _check(x, w, group, act_bits)
    q, s, z = mixpe_ref.quantize_weights(w, group)
    return _matmul(x, q, s, z, group, act_bits, False, bias)
