"""MixPE (2024): mixed-precision group GEMM with dequantization after the group sum.

    y = s_a * sum_g s_g * (sum_{k in g} q_k a_k - z_g * sum_{k in g} a_k)

    frugalnn.mixpe.matmul(x, w, group=128, act_bits=8)      # W4A8 (or W4A16) on the CPU kernel
    frugalnn.mixpe.shift_add_matmul(x, w)                    # what the PE does (numpy, bit-serial)
    frugalnn.convert_(model, MixPEConfig(act_bits=8, group_size=128))
    frugalnn.hw.mixpe: the accelerator model (PE arrays, energy per op at 28 nm, workloads)

The kernel is frugalnn.kernels.mixpe (csrc/mixpe/). docs/mixpe.md has the measurements.
"""
from __future__ import annotations

from frugalnn.kernels.mixpe import PackedW4
from frugalnn.mixpe.shift_add import multiply_matmul, shift_add_matmul

_LAZY = {"MixPEConfig", "MixPELinear"}


def matmul(x, w, group: int = 128, act_bits: int = 8, bias=None, threads: int | None = None):
    """x [M, K] @ w.T for float w [N, K] (quantized here) or a PackedW4, on the compiled kernel."""
    from frugalnn.kernels import mixpe as kernel

    packed = w if isinstance(w, PackedW4) else PackedW4.from_float(w, group)
    if act_bits == 8:
        return kernel.w4a8(x, packed, bias, threads=threads)
    if act_bits == 16:
        import numpy as np

        return kernel.w4a16(np.asarray(x, np.float32).astype(np.float16), packed, bias, threads=threads)
    raise ValueError(f"act_bits: expected 8 or 16, got {act_bits!r}")


def __getattr__(name: str):
    if name in _LAZY:
        from frugalnn.mixpe import nn

        return getattr(nn, name)
    raise AttributeError(f"module 'frugalnn.mixpe' has no attribute {name!r}")


__all__ = ["MixPEConfig", "MixPELinear", "PackedW4", "matmul", "multiply_matmul", "shift_add_matmul"]
