"""T-MAC (Wei et al., EuroSys'25): lookup-table GEMV/GEMM for 1-4 bit weights on CPU (PAPERS.md section 1).

    from frugalnn.tmac import LUTWeight, LUTConfig, matmul
    w = LUTWeight.from_float(weight, bits=2, group_size=64)      # or LUTWeight.from_gguf(reader_tensor)
    y = matmul(x, w)                                              # x [..., K] -> [..., M]
    frugalnn.convert_(model, LUTConfig(bits=4, group_size=128))  # nn.Linear -> LUTLinear

Kernels: csrc/lut/ (serial reference + AVX2 vpshufb); numpy reference: frugalnn.kernels.lut_ref.
`experiment.py` checks the paper (`frugalnn report --only tmac`), `bench.py` races llama.cpp
(`frugalnn bench tmac`).
"""
from frugalnn.tmac.ops import matmul
from frugalnn.tmac.weight import TERNARY, LUTWeight

_TORCH = {"LUTLinear", "LUTConfig"}  # need torch: loaded on first use, so `import frugalnn.tmac` stays light


def __getattr__(name):
    if name == "quantize":  # the model-level quantizer (RTN / GPTQ) of frugalnn.tmac.calibrated: needs torch
        from frugalnn.tmac.calibrated import quantize

        return quantize
    if name in _TORCH:
        from frugalnn.tmac import nn

        return getattr(nn, name)
    raise AttributeError(f"module 'frugalnn.tmac' has no attribute {name!r}")


__all__ = ["LUTConfig", "LUTLinear", "LUTWeight", "TERNARY", "matmul", "quantize"]
