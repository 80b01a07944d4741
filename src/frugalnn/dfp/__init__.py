"""Dynamic fixed point INT16 training (Das et al., ICLR 2018) on an int16 GEMM with int32 chunk sums.

    frugalnn.dfp.matmul(a, b)                       # a DFP16 matrix product (float or DFP operands)
    frugalnn.convert_(model, DFPConfig())           # Conv1d/Conv2d/Linear train in DFP16
    torchrun --nproc-per-node 2 -m frugalnn.dfp.train --quick

The number format is frugalnn.formats.DFP; the kernel is frugalnn.kernels.dfp.gemm; the training
loop is the core's frugalnn.train.fit. docs/dfp.md has the measurements.
"""
from __future__ import annotations

from frugalnn.dfp.gemm import matmul

_LAZY = {"DFPConfig", "DFPLinear", "DFPConv1d", "DFPConv2d", "capture_operands", "dfp_layers"}


def __getattr__(name: str):
    # torch is imported only when a torch-side name is asked for (matmul works on numpy alone).
    if name in _LAZY:
        from frugalnn.dfp import nn

        return getattr(nn, name)
    if name in ("DFPNonFiniteError", "quantize"):
        from frugalnn.dfp import quantize

        return getattr(quantize, name)
    raise AttributeError(f"module 'frugalnn.dfp' has no attribute {name!r}")


__all__ = ["DFPConfig", "DFPConv1d", "DFPConv2d", "DFPLinear", "DFPNonFiniteError", "capture_operands",
           "dfp_layers", "matmul", "quantize"]
