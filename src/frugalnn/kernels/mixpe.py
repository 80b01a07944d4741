"""MixPE group GEMM (W4A8 and W4A16): dequantization after the group sum.

    y[m, n] = sa[m] * sum_g s[n,g] * (sum_{k in g} q[n,k] aq[m,k] - z[n,g] * asum[m,g])   (W4A8)

q uint4 (asymmetric, one float32 scale and uint8 zero per row and group of 32/64/128 along K), aq
int8 per token (symmetric). The group's integer part is exact; one fp32 FMA per group and output
applies the scale. `impl="numpy"` runs `mixpe_ref`. Operation order and layout: csrc/mixpe/.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalnn import _core
from frugalnn._arrays import is_tensor, require_choice, threads_arg
from frugalnn.kernels import mixpe_ref

IMPLS = ("native", "numpy")


def isa() -> str:
    """The ISA the native W4A8/W4A16 kernels run now: 'serial', 'avx2', 'avx512' (AVX512BW: vpmaddubsw +
    vpmaddwd) or 'avx512 + VNNI' (vpdpbusd)."""
    from frugalnn.kernels import integer_isa

    return integer_isa("mixpe")


@dataclass(frozen=True)
class PackedW4:
    """Packed uint4 weights of a [n, k] matrix (csrc/mixpe/layout.h)."""

    wp: np.ndarray
    sp: np.ndarray
    zp: np.ndarray
    n: int
    k: int
    group: int

    @classmethod
    def from_float(cls, w, group: int = 128) -> "PackedW4":
        w = _numpy(w, "w")
        if w.ndim != 2:
            raise ValueError(f"w: expected a 2-d [out, in] matrix, got shape {w.shape}")
        group = mixpe_ref.check_group(group)
        q, s, z = mixpe_ref.quantize_weights(w, group)
        wp, sp, zp = mixpe_ref.pack_weights(q, s, z, group)
        return cls(wp, sp, zp, int(w.shape[0]), int(w.shape[1]), group)

    def unpack(self):
        """(q [n, Kp] uint8, s [n, G] float32, z [n, G] uint8)."""
        return mixpe_ref.unpack_weights(self.wp, self.sp, self.zp, self.n)

    def dequantize(self) -> np.ndarray:
        q, s, z = self.unpack()
        return mixpe_ref.dequantize(q, s, z, self.group, self.k)

    @property
    def nbytes(self) -> int:
        """Bytes a row-exact store needs: 4 bits per weight, a float32 scale and a byte zero per group."""
        groups = -(-self.k // self.group)
        return self.n * (-(-self.k // 2) + groups * 5)

    @property
    def bits_per_weight(self) -> float:
        return 4.0 + 40.0 / self.group


def _numpy(x, name: str) -> np.ndarray:
    if is_tensor(x):
        x = x.detach().cpu().float().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    return x


def _activations(x, k: int, name: str = "x") -> np.ndarray:
    x = _numpy(x, name)
    if x.ndim != 2 or x.shape[1] != k:
        raise ValueError(f"{name}: expected shape (M, {k}), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating) and x.dtype.name != "bfloat16":
        raise TypeError(f"{name}: expected a floating-point array, got dtype {x.dtype}")
    return np.ascontiguousarray(x, np.float32)


def _bias(bias, n: int):
    if bias is None:
        return None
    b = np.ascontiguousarray(_numpy(bias, "bias"), np.float32)
    if b.shape != (n,):
        raise ValueError(f"bias: expected shape ({n},), got {b.shape}")
    return b


def quantize_activations(x, group: int, impl: str = "native", threads: int | None = None):
    """x [M, K] float -> (aq [M, Kp] int8, asum [M, G] int32, sa [M] float32)."""
    require_choice(impl, "impl", IMPLS)
    group = mixpe_ref.check_group(group)
    x = _numpy(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x: expected a 2-d array, got shape {x.shape}")
    x = np.ascontiguousarray(x, np.float32)
    if impl == "numpy":
        return mixpe_ref.quantize_activations(x, group)
    m, k = x.shape
    kp = mixpe_ref.padded(k, group)
    aq = np.empty((m, kp), np.int8)
    asum = np.empty((m, kp // group), np.int32)
    sa = np.empty(m, np.float32)
    _core.mixpe.quantize(x, group, aq, asum, sa, threads_arg(threads))
    return aq, asum, sa


def w4a8(x, w: PackedW4, bias=None, impl: str = "native", threads: int | None = None) -> np.ndarray:
    """y [M, n] float32 = W4A8 GEMM of x [M, k] (quantized per token to int8) with packed weights."""
    require_choice(impl, "impl", IMPLS)
    xa = _activations(x, w.k)
    b = _bias(bias, w.n)
    if impl == "numpy":
        q, s, z = w.unpack()
        aq, asum, sa = mixpe_ref.quantize_activations(xa, w.group)
        return mixpe_ref.gemm_w4a8(q, s, z, w.group, aq, asum, sa, b)
    out = np.empty((xa.shape[0], w.n), np.float32)
    _core.mixpe.w4a8(w.wp, w.sp, w.zp, w.n, w.k, w.group, xa, b, out, threads_arg(threads))
    return out


def w4a8_quantized(aq, asum, sa, w: PackedW4, bias=None, impl: str = "native", threads: int | None = None):
    """The W4A8 GEMM on activations already quantized (aq [M, Kp] int8, asum [M, G] int32, sa [M])."""
    require_choice(impl, "impl", IMPLS)
    b = _bias(bias, w.n)
    if impl == "numpy":
        q, s, z = w.unpack()
        return mixpe_ref.gemm_w4a8(q, s, z, w.group, aq, asum, sa, b)
    out = np.empty((aq.shape[0], w.n), np.float32)
    _core.mixpe.w4a8_quantized(w.wp, w.sp, w.zp, w.n, w.k, w.group, aq, asum, sa, b, out, threads_arg(threads))
    return out


def w4a16(x, w: PackedW4, bias=None, impl: str = "native", threads: int | None = None,
          dequant_each: bool = False) -> np.ndarray:
    """y [M, n] float32 with fp16/bf16 (or float32) activations x [M, k]; values are used exactly.
    dequant_each: the conventional kernel MixPE removes (each weight dequantized before its FMA)."""
    require_choice(impl, "impl", IMPLS)
    xa = _activations(x, w.k)
    b = _bias(bias, w.n)
    if impl == "numpy":
        q, s, z = w.unpack()
        if dequant_each:
            y = xa @ mixpe_ref.dequantize(q, s, z, w.group, w.k).T
            return y if b is None else (y + b).astype(np.float32)
        return mixpe_ref.gemm_w4a16(q, s, z, w.group, xa, b)
    out = np.empty((xa.shape[0], w.n), np.float32)
    _core.mixpe.w4a16(w.wp, w.sp, w.zp, w.n, w.k, w.group, xa, b, out, threads_arg(threads), bool(dequant_each))
    return out
