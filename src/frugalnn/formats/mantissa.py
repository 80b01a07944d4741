"""Shortening the mantissa of float32 values in place of a narrower format (used by L-Mul).

Both functions keep the float32 exponent range and act on the bit pattern: `bits` mantissa bits
survive, the rest are cleared (`truncate_mantissa`, toward zero) or rounded to nearest, ties to
even (`round_mantissa`, where a carry may bump the exponent, up to inf). Subnormals are treated
the same way on their bit pattern (same absolute quantum as the smallest normal binade).
NaN stays NaN (clearing bits of a NaN payload could otherwise turn it into inf) and inf stays inf.
"""
from __future__ import annotations

import numpy as np

from frugalnn._arrays import from_numpy, require_floating, require_int, to_numpy

_MANT = 23


def _as_bits(x, name):
    a, as_tensor = to_numpy(x, name)
    require_floating(a, name)
    if a.dtype != np.float32:
        a = a.astype(np.float32)
    return a, a.view(np.uint32), as_tensor


def truncate_mantissa(x, bits: int):
    """Keep the top `bits` (0..23) mantissa bits of float32 `x`, rounding toward zero."""
    bits = require_int(bits, "bits", 0, _MANT)
    a, u, as_tensor = _as_bits(x, "x")
    mask = np.uint32((0xFFFFFFFF << (_MANT - bits)) & 0xFFFFFFFF)
    out = (u & mask).view(np.float32)
    out = np.where(np.isnan(a), a, out)
    return from_numpy(out, as_tensor)


def round_mantissa(x, bits: int):
    """Round float32 `x` to `bits` (0..23) mantissa bits, to nearest with ties to even."""
    bits = require_int(bits, "bits", 0, _MANT)
    a, u, as_tensor = _as_bits(x, "x")
    drop = _MANT - bits
    if drop == 0:
        return from_numpy(a.copy(), as_tensor)
    u64 = u.astype(np.uint64)
    lsb = (u64 >> np.uint64(drop)) & np.uint64(1)
    rounded = (u64 + np.uint64((1 << (drop - 1)) - 1) + lsb) >> np.uint64(drop) << np.uint64(drop)
    out = rounded.astype(np.uint32).view(np.float32)  # a carry out of the top exponent gives inf
    finite = np.isfinite(a)
    out = np.where(finite, out, a)
    return from_numpy(out, as_tensor)
