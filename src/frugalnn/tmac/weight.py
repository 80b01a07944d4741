"""LUTWeight: a low-bit weight matrix held in the T-MAC kernel's layout (bit planes, 32-row units)
plus per-group float32 scales, built once offline and multiplied by `frugalnn.tmac.matmul`.

Effective weight of row m, column k (group g = k // group_size):
    w[m, k] = (2 q - (2^b - 1)) * ws[m, g] + zt[m, g]      (float32, in this order)
with ws = scale / 2 and zt = scale * (2^b - 1) / 2 + offset (zero for symmetric weights), which is
q * scale + offset rewritten for the sign-plane decomposition (csrc/lut/layout.h).

Bound on scales and offsets (from_codes refuses anything past it): every effective weight must be
a finite float32, so per group (2^b - 1) * |scale| + |offset| <= MAX_WEIGHT (float32's largest
value, about 3.4e38). Past it ws, zt or a dequantized weight would round to inf and every output
that touches the group would be inf or NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalnn._arrays import require_choice, require_floating, require_int, to_numpy
from frugalnn.kernels import lut as lutk
from frugalnn.kernels import pack

TERNARY = "ternary"
KINDS = ("int", TERNARY)
MAX_WEIGHT = float(np.finfo(np.float32).max)  # largest |q * scale + offset| accepted (see the module docstring)


def _check_group(k: int, group_size: int) -> None:
    if group_size % 4:
        raise ValueError(f"group_size: expected a multiple of 4, got {group_size}")
    if k % group_size:
        raise ValueError(f"group_size: {group_size} does not divide K = {k}")


@dataclass(eq=False)
class LUTWeight:
    shape: tuple[int, int]  # (M, K) = (out_features, in_features)
    bits: int  # bits per code in the kernel (ternary: 2)
    group_size: int
    packed: np.ndarray  # uint8, kernel layout
    ws: np.ndarray  # float32 [units, groups, 32]: scale / 2
    zt: np.ndarray | None  # float32 [units, groups, 32] or None (symmetric)
    kind: str = "int"  # "int" or "ternary"
    source: str = "float"  # where the codes came from: "float" or "gguf:<TYPE>"

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_codes(cls, codes: np.ndarray, scales: np.ndarray, offsets: np.ndarray, bits: int, group_size: int,
                   *, symmetric: bool = False, kind: str = "int", source: str = "codes",
                   threads: int | None = None) -> "LUTWeight":
        """Codes q [M, K], scales/offsets [M, K/group_size]: w = q * scale + offset.

        codes: an integer (or bool) array, numpy or torch, each value in [0, 2^bits); float codes
        are refused rather than truncated. scales and offsets: finite real numbers within the
        bound in the module docstring."""
        bits = require_int(bits, "bits", 1, 8)
        group_size = require_int(group_size, "group_size", 4)
        kind = require_choice(kind, "kind", KINDS)
        codes = _codes(codes, bits)
        m, k = codes.shape
        if k == 0 or k % 4:
            raise ValueError(f"K: expected a positive multiple of 4, got {k}")
        _check_group(k, group_size)
        groups = k // group_size
        scales = _real_matrix(scales, "scales", (m, groups))
        offsets = _real_matrix(offsets, "offsets", (m, groups))
        # float64 cannot overflow here: |scale| <= 3.4e38 times at most 255, plus |offset|.
        top = np.abs(scales.astype(np.float64)) * ((1 << bits) - 1) + np.abs(offsets.astype(np.float64))
        if (top > MAX_WEIGHT).any():
            r, g = np.argwhere(top > MAX_WEIGHT)[0]
            raise ValueError(f"scales: row {r}, group {g}: scale {scales[r, g]:g} with offset {offsets[r, g]:g} gives "
                             f"weights up to {top[r, g]:.3g}, past float32's {MAX_WEIGHT:.3g} at {bits} bits")
        scales, offsets = scales.astype(np.float32), offsets.astype(np.float32)
        packed = lutk.transform(codes, bits, group_size, threads=threads)
        units = lutk.layout_sizes(m, k, group_size, bits)[0]
        half = np.float32(((1 << bits) - 1) / 2)
        ws = _unit_major(scales * np.float32(0.5), units)
        zt = None if symmetric else _unit_major(scales * half + offsets, units)
        if zt is not None and not zt.any():
            zt = None
        return cls((m, k), bits, group_size, packed, ws, zt, kind, source)

    @classmethod
    def from_float(cls, w, bits: int | str, group_size: int = 128, symmetric: bool = True, *,
                   threads: int | None = None, search: str = "minmax") -> "LUTWeight":
        """Quantize a float weight [M, K] group-wise to `bits` (1..4, or up to 8) or to "ternary".

        bits="ternary": BitNet b1.58 absmean quantization, {-1, 0, +1} times one scale per tensor
        (`group_size` and `symmetric` are ignored; the kernel's exact int32 path runs over all of K).
        Otherwise codes are round-to-nearest on a per-group grid (frugalnn.kernels.pack): symmetric
        uses mid-rise levels (+-scale/2, +-3 scale/2, ...), asymmetric min/max with a zero point;
        symmetric 1-bit is sign(w) * mean|w| per group.
        search="mse": each group's scale (and offset) by the least-squares search of
        frugalnn.tmac.quantizers.fit_groups instead of min/max (ternary and symmetric 1-bit, already
        L2-optimal levels, are unchanged).
        """
        search = require_choice(search, "search", ("minmax", "mse"))
        a, _ = to_numpy(w, "w")
        require_floating(a, "w")
        if a.ndim != 2:
            raise ValueError(f"w: expected a 2-d weight [out_features, in_features], got shape {a.shape}")
        a = np.ascontiguousarray(a, np.float32)
        m, k = a.shape
        if k == 0 or k % 4:
            raise ValueError(f"w: in_features must be a positive multiple of 4, got K = {k}")
        if bits == TERNARY:
            return cls._ternary(a, threads)
        bits = require_int(bits, "bits", 1, 8)
        group_size = require_int(group_size, "group_size", 4)
        _check_group(k, group_size)
        if bits == 1 and symmetric:
            return cls._binary(a, group_size, threads)
        if search == "mse":
            from frugalnn.tmac.quantizers import fit_groups

            codes, scales, offsets = fit_groups(a, bits, group_size, bool(symmetric))
            return cls.from_codes(codes, scales, offsets, bits, group_size, symmetric=bool(symmetric),
                                  source="float", threads=threads)
        packed, scales, offsets = pack.quantize_pack(a, bits, group_size, bool(symmetric), threads=threads)
        codes = pack.unpack_codes(packed, bits, k, threads=threads)
        return cls.from_codes(codes, scales, offsets, bits, group_size, symmetric=bool(symmetric), source="float",
                              threads=threads)

    @classmethod
    def _binary(cls, a: np.ndarray, group_size: int, threads) -> "LUTWeight":
        # Symmetric 1-bit: sign(w) times the group's mean |w| (the L2-optimal level, as in XNOR-Net);
        # absmax levels (what the generic quantizer would pick) lose most of a Gaussian's energy.
        if not np.isfinite(a).all():
            r, c = np.argwhere(~np.isfinite(a))[0]
            raise ValueError(f"w: row {r}, group {c // group_size} holds NaN/inf")
        m, k = a.shape
        level = np.abs(a).reshape(m, k // group_size, group_size).mean(axis=2, dtype=np.float64).astype(np.float32)
        codes = (a >= 0).astype(np.uint8)
        return cls.from_codes(codes, level * np.float32(2), -level, 1, group_size, symmetric=True, source="float",
                              threads=threads)

    @classmethod
    def _ternary(cls, a: np.ndarray, threads) -> "LUTWeight":
        if not np.isfinite(a).all():
            r, c = np.argwhere(~np.isfinite(a))[0]
            raise ValueError(f"w: element ({r}, {c}) is {a[r, c]}; ternary quantization needs finite weights")
        m, k = a.shape
        scale = np.float32(np.abs(a, dtype=np.float64).mean()) if a.size else np.float32(0)
        inv = np.float32(1) / scale if scale > 0 else np.float32(0)
        codes = (np.clip(np.rint(a * inv), -1, 1) + 1).astype(np.uint8)
        scales = np.full((m, 1), scale, np.float32)
        return cls.from_codes(codes, scales, -scales, 2, k, kind=TERNARY, source="float", threads=threads)

    @classmethod
    def from_gguf(cls, tensor, *, qtype=None, shape=None, threads: int | None = None) -> "LUTWeight":
        """A GGUF tensor re-packed losslessly: Q4_0, Q4_1, Q8_0, TQ1_0, TQ2_0. No float32 copy of the
        weight is made. `tensor` is a gguf.ReaderTensor, or raw data -- bytes, bytearray, memoryview or
        a numpy array (read as its bytes) -- with qtype= (a gguf.GGMLQuantizationType, its name or int
        id) and shape=(M, K); the byte count must be exactly what the type and shape need."""
        from frugalnn.tmac.gguf import decode

        codes, scales, offsets, bits, group, kind, name = decode(tensor, qtype=qtype, shape=shape)
        return cls.from_codes(codes, scales, offsets, bits, group, kind=kind, source=f"gguf:{name}", threads=threads)

    # ---- inspection ---------------------------------------------------------------------------
    @property
    def symmetric(self) -> bool:
        return self.zt is None

    @property
    def nbytes(self) -> int:
        """Bytes held: packed codes (padded to 32-row units) + float32 scales (+ zero terms)."""
        return int(self.packed.nbytes + self.ws.nbytes + (0 if self.zt is None else self.zt.nbytes))

    @property
    def bits_per_weight(self) -> float:
        m, k = self.shape
        return 8.0 * self.nbytes / max(m * k, 1)

    def gemv_fn(self, threads: int | None = None):
        """Lean one-token entry point: fn(x [K] or [1, K] float32 C-contiguous) -> [1, M] (see lut.ops.gemv_fn)."""
        from frugalnn.tmac.ops import gemv_fn

        return gemv_fn(self, threads)

    def codes(self, threads: int | None = None) -> np.ndarray:
        m, k = self.shape
        return lutk.untransform(self.packed, self.bits, self.group_size, m, k, threads=threads)

    def dequantize(self, threads: int | None = None) -> np.ndarray:
        """The float32 weight [M, K] the kernel multiplies by (see the module docstring)."""
        m, k = self.shape
        q = self.codes(threads).astype(np.float32)
        level = np.float32(2) * q - np.float32((1 << self.bits) - 1)
        ws = np.repeat(_row_major(self.ws, m), self.group_size, axis=1)
        out = level * ws
        if self.zt is not None:
            out = out + np.repeat(_row_major(self.zt, m), self.group_size, axis=1)
        return out

    def __repr__(self) -> str:
        m, k = self.shape
        what = "ternary" if self.kind == TERNARY else f"{self.bits}-bit g{self.group_size}"
        zero = "" if self.symmetric else " +zero"
        return f"LUTWeight({m}x{k}, {what}{zero}, {self.nbytes / 2**20:.2f} MiB, from {self.source})"


def _codes(codes, bits: int) -> np.ndarray:
    """uint8 [M, K] from an integer array, each value checked against [0, 2^bits) before the cast
    (a cast first would turn -1 into 255 and 2.7 into 2)."""
    a, _ = to_numpy(codes, "codes")
    if a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"codes: expected an integer array, got dtype {a.dtype} (round float codes explicitly)")
    if a.ndim != 2:
        raise ValueError(f"codes: expected a 2-d array, got shape {a.shape}")
    top = (1 << bits) - 1
    if a.size and a.dtype != np.bool_:
        bad = (a < 0) | (a > top)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"codes: element ({r}, {c}) is {a[r, c]}, outside 0..{top} for {bits} bits")
    return np.ascontiguousarray(a, np.uint8)


def _real_matrix(a, name: str, shape: tuple[int, int]) -> np.ndarray:
    """A finite real array of `shape` (float64 for the bound check; float32 values stay exact)."""
    a, _ = to_numpy(a, name)
    if a.dtype != np.bool_ and not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name}: expected a real-valued array, got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        r, g = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name}: row {r}, group {g} is {a[r, g]} (must be finite)")
    return a


def _unit_major(a: np.ndarray, units: int) -> np.ndarray:
    """[M, groups] -> [units, groups, 32] float32 (padding rows zero)."""
    m, groups = a.shape
    out = np.zeros((units * lutk.UNIT_ROWS, groups), np.float32)
    out[:m] = a
    return np.ascontiguousarray(out.reshape(units, lutk.UNIT_ROWS, groups).transpose(0, 2, 1))


def _row_major(a: np.ndarray, m: int) -> np.ndarray:
    return a.transpose(0, 2, 1).reshape(-1, a.shape[1])[:m]
