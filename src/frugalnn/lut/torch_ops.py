"""The LUT kernel as a torch operator: `torch.ops.frugalnn.lut_matmul`.

torch.library.custom_op + register_fake, so modules using it trace under torch.compile and
FakeTensor/meta propagation; a flop formula (2 * MACs) so torch.utils.flop_counter (and the
project's cost profiler) counts converted models. Inference only: there is no backward.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.flop_counter import register_flop_formula

from frugalnn.lut.ops import matmul_numpy, resolve_threads
from frugalnn.lut.weight import LUTWeight


def weight_view(packed: torch.Tensor, ws: torch.Tensor, zt: torch.Tensor, m: int, k: int, bits: int,
                group_size: int, has_zero: bool) -> LUTWeight:
    """A LUTWeight over tensors' memory (no copy)."""
    return LUTWeight((m, k), bits, group_size, packed.numpy(), ws.numpy(), zt.numpy() if has_zero else None)


@torch.library.custom_op("frugalnn::lut_matmul", mutates_args=())
def lut_matmul(x: torch.Tensor, packed: torch.Tensor, ws: torch.Tensor, zt: torch.Tensor, m: int, k: int,
               bits: int, group_size: int, has_zero: bool, threads: int) -> torch.Tensor:
    """x [..., K] (float32, CPU) @ W.T -> [..., M] float32; W in the LUT layout (frugalnn.lut)."""
    if x.shape[-1] != k:
        raise ValueError(f"x: expected shape [..., {k}], got {tuple(x.shape)}")
    w = weight_view(packed, ws, zt, m, k, bits, group_size, has_zero)
    a = np.ascontiguousarray(x.detach().reshape(-1, k).to(torch.float32).numpy())
    y = matmul_numpy(a, w, resolve_threads(None if threads < 1 else threads))
    return torch.from_numpy(y).reshape(*x.shape[:-1], m)


@lut_matmul.register_fake
def _lut_matmul_fake(x, packed, ws, zt, m, k, bits, group_size, has_zero, threads):
    return x.new_empty((*x.shape[:-1], m), dtype=torch.float32)


@register_flop_formula(torch.ops.frugalnn.lut_matmul)
def _lut_matmul_flops(x_shape, packed_shape, ws_shape, zt_shape, m, k, *args, out_shape=None, **kwargs) -> int:
    """2 FLOPs per multiply-accumulate of the equivalent dense matmul: 2 * tokens * M * K."""
    return 2 * math.prod(x_shape[:-1]) * m * k
