"""Dynamic fixed point (DFP): integer mantissas sharing one power-of-two exponent per block.

x ~= m * 2^e with m an int16 (or int8) mantissa and e shared by the whole tensor
(`block_size=None`, Das et al. 2018) or by each run of `block_size` consecutive values in C order
(the OCP microscaling idea; the last block may be shorter).

Exponent choice: with M = max|x| over a block, e = floor(log2 M) + 1 - (bits - 1 - headroom),
so every |m| < 2^(bits-1-headroom); `headroom` bits stay free so sums of a few mantissas do not
overflow (Das et al. use 2 for int16: mantissas below 2^13).

Error bounds, per element of a block with exponent e (tested in tests/formats/test_dfp.py):
  rounding="nearest"     |x - x'| <= 2^(e-1) <= M * 2^-(bits-1-headroom)   (ties to even)
  rounding="stochastic"  |x - x'| <  2^e, and E[x'] = x (unbiased)
With headroom 0 a value can round up to 2^(bits-1) and is saturated to 2^(bits-1)-1, which costs
up to 2^e. `dequantize()` is exact whenever m * 2^e is a normal float32.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalnn._arrays import from_numpy, require_choice, require_floating, require_int, to_numpy

ROUNDINGS = ("nearest", "stochastic")
_INT = {16: np.int16, 8: np.int8}


@dataclass(frozen=True, eq=False)
class DFP:
    mantissa: np.ndarray  # int16/int8, the input's shape
    exponent: np.ndarray  # int32 [n_blocks] (one entry when per tensor)
    bits: int
    block_size: int | None
    headroom: int

    @classmethod
    def from_float(cls, x, bits: int = 16, block_size: int | None = None, headroom: int = 2,
                 rounding: str = "nearest", rng: np.random.Generator | int | None = None) -> "DFP":
        if bits not in _INT:
            raise ValueError(f"bits: expected 16 or 8, got {bits!r}")
        headroom = require_int(headroom, "headroom", 0, bits - 2)
        if block_size is not None:
            block_size = require_int(block_size, "block_size", 1)
        require_choice(rounding, "rounding", ROUNDINGS)
        a, _ = to_numpy(x, "x")
        require_floating(a, "x")
        bad = ~np.isfinite(a)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"x: non-finite value {a[idx]} at index {idx}; DFP has no inf/NaN")

        flat = a.astype(np.float64).ravel()
        size = flat.size
        block = size if block_size is None else block_size
        n_blocks = max(1, -(-size // block)) if size else (1 if block_size is None else 0)
        padded = np.zeros(n_blocks * block if size else 0, np.float64)
        padded[:size] = flat
        blocks = padded.reshape(n_blocks, block) if size else padded.reshape(n_blocks, 0)
        amax = np.abs(blocks).max(axis=1) if size else np.zeros(n_blocks)
        _, ex = np.frexp(amax)  # amax = f * 2^ex, f in [0.5, 1): floor(log2 amax) = ex - 1
        exponent = np.where(amax > 0, ex - (bits - 1 - headroom), 0).astype(np.int32)

        scaled = np.ldexp(blocks, -exponent[:, None])  # exact in float64
        if rounding == "nearest":
            m = np.rint(scaled)
        else:
            gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
            m = np.floor(scaled + gen.random(scaled.shape))
        top = 2 ** (bits - 1) - 1
        m = np.clip(m, -top, top).astype(_INT[bits]).ravel()[:size].reshape(a.shape)
        return cls(m, exponent, bits, block_size, headroom)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.mantissa.shape

    def block_exponents(self) -> np.ndarray:
        """The exponent of every element, shaped like the tensor."""
        if self.block_size is None:
            return np.full(self.shape, self.exponent[0] if self.exponent.size else 0, np.int32)
        per = np.repeat(self.exponent, self.block_size)[: self.mantissa.size]
        return per.reshape(self.shape)

    def dequantize(self, as_tensor: bool = False):
        out = np.ldexp(self.mantissa.astype(np.float64), self.block_exponents()).astype(np.float32)
        return from_numpy(out, as_tensor)

    def abs_error_bound(self, rounding: str = "nearest") -> np.ndarray:
        """Per-element bound on |x - dequantize()| (see the module docstring)."""
        require_choice(rounding, "rounding", ROUNDINGS)
        e = self.block_exponents().astype(np.float64)
        half = rounding == "nearest" and self.headroom > 0
        return np.ldexp(0.5 if half else 1.0, e.astype(np.int32))

    @property
    def nbytes(self) -> int:
        return self.mantissa.nbytes + self.exponent.size  # exponents fit one byte each

    @property
    def bits_per_weight(self) -> float:
        """Bits really stored per value: mantissas plus the shared exponents."""
        n = self.mantissa.size
        return 8.0 * self.nbytes / n if n else float("nan")

    def __repr__(self) -> str:
        scope = "per tensor" if self.block_size is None else f"blocks of {self.block_size}"
        return f"DFP(int{self.bits}, shape={self.shape}, {scope}, headroom={self.headroom})"
