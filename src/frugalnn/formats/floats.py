"""Rounding to narrow floating-point formats, with an explicit overflow policy.

The rounding itself (round to nearest, ties to even, subnormals included) is ml_dtypes'; this
module adds what ml_dtypes leaves implicit or format-dependent:

* overflow: a value whose rounded magnitude would exceed the format's largest finite value.
  ml_dtypes answers NaN for e4m3fn, inf for e5m2 and silently saturates fp6/fp4, while torch
  saturates e4m3fn in some paths; here the caller picks one rule for every format:
  "saturate" -> +-max finite (infinite inputs too, as in OCP's saturating conversion),
  "nan" -> NaN, "inf" -> +-inf.
* NaN: NaN in gives NaN out for every format. fp6/fp4 have no NaN encoding (ml_dtypes turns
  NaN into zero there); the float32 container carries it instead of inventing a value.

Results are float32 values in the caller's container type (numpy in -> numpy out, torch in ->
torch out).
"""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from frugalnn._arrays import from_numpy, require_choice, require_floating, to_numpy

OVERFLOW_POLICIES = ("saturate", "nan", "inf")


@dataclass(frozen=True)
class FloatFormat:
    name: str
    dtype: np.dtype
    exponent_bits: int
    mantissa_bits: int
    has_inf: bool
    has_nan: bool

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def max(self) -> float:
        return float(ml_dtypes.finfo(self.dtype).max)

    @property
    def smallest_normal(self) -> float:
        return float(ml_dtypes.finfo(self.dtype).smallest_normal)

    @property
    def smallest_subnormal(self) -> float:
        return float(ml_dtypes.finfo(self.dtype).smallest_subnormal)

    @property
    def unit_roundoff(self) -> float:
        """Largest relative error of round-to-nearest in the normal range: 2^-(mantissa_bits+1)."""
        return 2.0 ** -(self.mantissa_bits + 1)

    @property
    def overflow_threshold(self) -> float:
        """Smallest magnitude that rounds past max: max + half an ulp (the tie itself overflows
        only when max's last mantissa bit is odd, as ties go to even)."""
        ulp = 2.0 ** (np.floor(np.log2(self.max)) - self.mantissa_bits)
        return self.max + ulp / 2


def _fmt(name, dtype, e, m, inf, nan):
    return FloatFormat(name, np.dtype(dtype), e, m, inf, nan)


FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        _fmt("fp32", np.float32, 8, 23, True, True),
        _fmt("fp16", np.float16, 5, 10, True, True),
        _fmt("bf16", ml_dtypes.bfloat16, 8, 7, True, True),
        _fmt("e4m3", ml_dtypes.float8_e4m3fn, 4, 3, False, True),
        _fmt("e5m2", ml_dtypes.float8_e5m2, 5, 2, True, True),
        _fmt("e2m3", ml_dtypes.float6_e2m3fn, 2, 3, False, False),
        _fmt("e3m2", ml_dtypes.float6_e3m2fn, 3, 2, False, False),
        _fmt("e2m1", ml_dtypes.float4_e2m1fn, 2, 1, False, False),
    )
}
ALIASES = {
    "float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
    "float8_e4m3fn": "e4m3", "fp8_e4m3": "e4m3", "float8_e5m2": "e5m2", "fp8_e5m2": "e5m2",
    "float6_e2m3fn": "e2m3", "fp6_e2m3": "e2m3", "float6_e3m2fn": "e3m2", "fp6_e3m2": "e3m2",
    "float4_e2m1fn": "e2m1", "fp4_e2m1": "e2m1", "fp4": "e2m1",
}


def get_format(fmt: str | FloatFormat) -> FloatFormat:
    if isinstance(fmt, FloatFormat):
        return fmt
    if not isinstance(fmt, str):
        raise TypeError(f"fmt: expected a format name, got {type(fmt).__name__}")
    key = ALIASES.get(fmt.lower(), fmt.lower())
    if key not in FORMATS:
        raise ValueError(f"fmt: unknown format {fmt!r}; known: {', '.join(FORMATS)} (aliases: {', '.join(ALIASES)})")
    return FORMATS[key]


def _odd_max_mantissa(f: FloatFormat) -> bool:
    m = f.max / 2.0 ** np.floor(np.log2(f.max))  # 1.xxx
    return int(round((m - 1) * 2**f.mantissa_bits)) % 2 == 1


def round_to(x, fmt: str | FloatFormat, overflow: str = "saturate"):
    """Round `x` to the values of `fmt` (round to nearest even); returns float32 values, same container."""
    f = get_format(fmt)
    require_choice(overflow, "overflow", OVERFLOW_POLICIES)
    a, as_tensor = to_numpy(x, "x")
    require_floating(a, "x")
    a = a.astype(np.float64 if a.dtype == np.float64 else np.float32, copy=False)

    mag = np.abs(a)
    limit = f.overflow_threshold
    with np.errstate(invalid="ignore"):
        over = (mag > limit) | ((mag == limit) & _odd_max_mantissa(f))
    nan = np.isnan(a)
    clipped = np.clip(np.where(nan, 0, a), -f.max, f.max)
    out = clipped.astype(f.dtype).astype(np.float32)
    with np.errstate(invalid="ignore"):  # sign(NaN) * inf; those slots are NaN-filled below
        if overflow == "saturate":
            fill = np.float32(f.max) * np.sign(a)
        elif overflow == "nan":
            fill = np.full_like(out, np.nan)
        else:
            fill = np.float32(np.inf) * np.sign(a)
    out = np.where(over, fill.astype(np.float32), out)
    out = np.where(nan, np.float32(np.nan), out).astype(np.float32, copy=False)
    return from_numpy(out, as_tensor)
