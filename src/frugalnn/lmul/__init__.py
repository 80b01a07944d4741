"""L-Mul (Luo & Sun 2024): floating-point multiplication approximated by one integer addition.

    from frugalnn.lmul import lmul, lmul_matmul, LMulConfig
    lmul(a, b, mantissa_bits=3)                       # elementwise, numpy or torch
    lmul_matmul(A, B, mantissa_bits=4)                # every product by L-Mul, sums in float32
    frugalnn.convert_(model, LMulConfig(mantissa_bits=3, scope="attention"))

Kernels: csrc/lmul/; numpy reference: frugalnn.kernels.lmul_ref. `experiment.py` checks the paper
(`frugalnn report --only lmul`), `bench.py` races torch (`frugalnn bench lmul`).
"""
from frugalnn.lmul.arith import ROUNDINGS, lmul, lmul_matmul, paper_offset

_TORCH = {"LMulConfig", "LMulLinear", "lmul_sdpa"}  # need torch: loaded on first use


def __getattr__(name):
    if name in _TORCH:
        from frugalnn.lmul import nn

        return getattr(nn, name)
    raise AttributeError(f"module 'frugalnn.lmul' has no attribute {name!r}")


__all__ = ["LMulConfig", "LMulLinear", "ROUNDINGS", "lmul", "lmul_matmul", "lmul_sdpa", "paper_offset"]
