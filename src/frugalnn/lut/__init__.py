"""T-MAC: lookup-table low-bit GEMV/GEMM on CPU (PAPERS.md section 1).

    w = LUTWeight.from_float(weight, bits=2, group_size=64)     # or .from_gguf(reader_tensor)
    y = frugalnn.lut.matmul(x, w)                                # x [..., K] -> [..., M]

Kernels: csrc/lut/ (serial reference + AVX2 vpshufb); numpy reference: frugalnn.kernels.lut_ref.
"""
from frugalnn.lut.ops import matmul
from frugalnn.lut.weight import TERNARY, LUTWeight

__all__ = ["LUTWeight", "TERNARY", "matmul"]
