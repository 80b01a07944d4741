"""GroupQuant: k-bit (1-8) integer weights with a scale (and offset) per group along K.

A weight matrix w [..., K] (rows = output features) is cut into groups of `group_size`
consecutive values along K; each group stores codes q in [0, 2^bits) and w ~= q * scale + offset.
Symmetric groups use mid-rise levels (offset = -scale * (2^bits - 1) / 2, so it is not stored);
asymmetric groups store the offset (the group minimum). Codes are packed into a real bit stream
of `bits` bits per weight by the compiled core; the exact layout is in csrc/pack/serial.h.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalnn._arrays import require_floating, require_int, threads_arg, to_numpy
from frugalnn.kernels import pack


@dataclass(frozen=True, eq=False)
class GroupQuant:
    packed: np.ndarray  # uint8 [rows, ceil(K * bits / 8)]
    scales: np.ndarray  # float32 [rows, K / group_size]
    offsets: np.ndarray | None  # float32 like scales; None when symmetric (derived)
    bits: int
    group_size: int
    shape: tuple[int, ...]  # the original weight shape [..., K]

    @classmethod
    def from_float(cls, w, bits: int, group_size: int, symmetric: bool = True,
                 threads: int | None = None) -> "GroupQuant":
        bits = require_int(bits, "bits", 1, 8)
        group_size = require_int(group_size, "group_size", 1)
        if not isinstance(symmetric, (bool, np.bool_)):
            raise TypeError(f"symmetric: expected a bool, got {type(symmetric).__name__}")
        a, _ = to_numpy(w, "w")
        require_floating(a, "w")
        if a.ndim < 1 or a.shape[-1] == 0:
            raise ValueError(f"w: expected a weight array [..., K] with K > 0, got shape {a.shape}")
        k = a.shape[-1]
        if k % group_size:
            raise ValueError(f"group_size: {group_size} does not divide K = {k}")
        rows = np.ascontiguousarray(a.reshape(-1, k), dtype=np.float32)
        packed, scales, offsets = pack.quantize_pack(rows, bits, group_size, bool(symmetric), threads=threads)
        return cls(packed, scales, None if symmetric else offsets, bits, group_size, tuple(a.shape))

    @property
    def symmetric(self) -> bool:
        return self.offsets is None

    @property
    def k(self) -> int:
        return self.shape[-1]

    def group_offsets(self) -> np.ndarray:
        """Offsets of every group, derived for symmetric groups exactly as the kernel does."""
        if self.offsets is not None:
            return self.offsets
        half = np.float32((1 << self.bits) - 1) * np.float32(0.5)
        return -half * self.scales

    def codes(self, threads: int | None = None) -> np.ndarray:
        return pack.unpack_codes(self.packed, self.bits, self.k, threads=threads).reshape(self.shape)

    def dequantize(self, threads: int | None = None) -> np.ndarray:
        threads_arg(threads)
        w = pack.dequantize_unpack(self.packed, self.scales, self.group_offsets(), self.bits, self.group_size,
                                   threads=threads)
        return w.reshape(self.shape)

    @property
    def nbytes(self) -> int:
        """Storage actually held: packed codes + scales (+ offsets when asymmetric)."""
        return self.packed.nbytes + self.scales.nbytes + (0 if self.offsets is None else self.offsets.nbytes)

    @property
    def bits_per_weight(self) -> float:
        n = int(np.prod(self.shape))
        return 8.0 * self.nbytes / n if n else float("nan")

    def __repr__(self) -> str:
        kind = "symmetric" if self.symmetric else "asymmetric"
        return (f"GroupQuant({self.bits}-bit {kind}, shape={self.shape}, group_size={self.group_size}, "
                f"{self.bits_per_weight:.3f} bits/weight)")
