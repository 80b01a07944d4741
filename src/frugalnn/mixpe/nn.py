"""MixPELinear: an nn.Linear whose weight is uint4 per group (asymmetric) and whose product runs on
the MixPE group GEMM (int8 activations per token, or fp16/bf16 activations), and MixPEConfig, which
`frugalnn.convert_` uses to swap a model's nn.Linear layers for it.

    frugalnn.convert_(model, MixPEConfig(act_bits=8, group_size=128), filter_fn=lambda m, fqn: "lm_head" not in fqn)

The kernel is a torch operator, `torch.ops.frugalnn.mixpe_matmul` (custom_op + register_fake, so a
converted model traces under torch.compile / FakeTensor). Inference only: there is no backward.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import register_flop_formula

from frugalnn import _core
from frugalnn._arrays import threads_arg
from frugalnn.convert import register_handler, swap_modules
from frugalnn.kernels import mixpe_ref
from frugalnn.kernels.mixpe import PackedW4

ACT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@torch.library.custom_op("frugalnn::mixpe_matmul", mutates_args=())
def mixpe_matmul(x: torch.Tensor, wp: torch.Tensor, sp: torch.Tensor, zp: torch.Tensor, bias: torch.Tensor | None,
                 n: int, k: int, group: int, act_bits: int, act_dtype: str, threads: int | None) -> torch.Tensor:
    """x [..., K] @ W.T (+ bias) -> [..., N] float32; W uint4 per group (csrc/mixpe/layout.h)."""
    if x.shape[-1] != k:
        raise ValueError(f"x: expected shape [..., {k}], got {tuple(x.shape)}")
    a = x.detach().reshape(-1, k)
    if act_bits == 16:  # the activations the PE sees: fp16/bf16, widened exactly for the kernel
        a = a.to(ACT_DTYPES[act_dtype])
    a = np.ascontiguousarray(a.to(torch.float32).numpy())
    out = np.empty((a.shape[0], n), np.float32)
    b = None if bias is None else bias.detach().numpy()
    fn = _core.mixpe.w4a8 if act_bits == 8 else _core.mixpe.w4a16
    fn(wp.numpy(), sp.numpy(), zp.numpy(), n, k, group, a, b, out, threads_arg(threads))
    return torch.from_numpy(out).reshape(*x.shape[:-1], n)


@mixpe_matmul.register_fake
def _mixpe_matmul_fake(x, wp, sp, zp, bias, n, k, group, act_bits, act_dtype, threads):
    return x.new_empty((*x.shape[:-1], n), dtype=torch.float32)


@register_flop_formula(torch.ops.frugalnn.mixpe_matmul)
def _mixpe_matmul_flops(x_shape, wp_shape, sp_shape, zp_shape, bias_shape, n, k, *args, out_shape=None, **kw) -> int:
    return 2 * math.prod(x_shape[:-1]) * n * k


class MixPELinear(nn.Module):
    """y = x @ W.T + b with W uint4 (group along K, scale and zero per group) and the MixPE kernel."""

    def __init__(self, weight: PackedW4, bias: torch.Tensor | None = None, act_bits: int = 8,
                 act_dtype: str = "float16", threads: int | None = None):
        super().__init__()
        self.in_features, self.out_features, self.group_size = weight.k, weight.n, weight.group
        self.act_bits, self.act_dtype, self.threads = act_bits, act_dtype, threads
        self.register_buffer("wp", torch.from_numpy(weight.wp))
        self.register_buffer("sp", torch.from_numpy(weight.sp))
        self.register_buffer("zp", torch.from_numpy(weight.zp))
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.float32).contiguous())

    @classmethod
    def from_linear(cls, linear: nn.Linear, act_bits: int = 8, group_size: int = 128, act_dtype: str = "float16",
                    threads: int | None = None) -> "MixPELinear":
        w = PackedW4.from_float(linear.weight.detach().to(torch.float32).numpy(), group_size)
        return cls(w, linear.bias, act_bits, act_dtype, threads)

    @property
    def packed(self) -> PackedW4:
        return PackedW4(self.wp.numpy(), self.sp.numpy(), self.zp.numpy(), self.out_features, self.in_features,
                        self.group_size)

    def dequantize(self) -> torch.Tensor:
        return torch.from_numpy(self.packed.dequantize())

    @property
    def nbytes(self) -> int:
        return self.packed.nbytes

    @property
    def bits_per_weight(self) -> float:
        return self.packed.bits_per_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.frugalnn.mixpe_matmul(x, self.wp, self.sp, self.zp, self.bias, self.out_features,
                                            self.in_features, self.group_size, self.act_bits, self.act_dtype,
                                            self.threads)
        return y.to(x.dtype) if x.dtype != torch.float32 and x.is_floating_point() else y

    def extra_repr(self) -> str:
        act = "int8 per token" if self.act_bits == 8 else self.act_dtype
        return (f"in_features={self.in_features}, out_features={self.out_features}, W4 group={self.group_size}, "
                f"activations={act}, bias={self.bias is not None}")


@dataclass
class MixPEConfig:
    """Swap nn.Linear layers for MixPELinear: uint4 weights per group of 32/64/128 along K;
    act_bits 8 (int8 per token, the W4A8 PE) or 16 (act_dtype float16/bfloat16, the W4A16 PE)."""

    weight_bits: int = 4
    act_bits: int = 8
    group_size: int = 128
    act_dtype: str = "float16"
    threads: int | None = None

    def __post_init__(self):
        if self.weight_bits != 4 or isinstance(self.weight_bits, bool):
            raise ValueError(f"weight_bits: MixPE's kernel is 4-bit, got {self.weight_bits!r}")
        if self.act_bits not in (8, 16) or isinstance(self.act_bits, bool):
            raise ValueError(f"act_bits: expected 8 or 16, got {self.act_bits!r}")
        mixpe_ref.check_group(self.group_size)
        if self.act_dtype not in ACT_DTYPES:
            raise ValueError(f"act_dtype: expected one of {tuple(ACT_DTYPES)}, got {self.act_dtype!r}")
        if self.threads is not None:
            threads_arg(self.threads)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MixPEConfig":
        return cls(**d)


@register_handler(MixPEConfig)
def _convert_mixpe(model, config: MixPEConfig, filter_fn=None):
    def pick(module, fqn):
        return isinstance(module, nn.Linear) and (filter_fn is None or filter_fn(module, fqn))

    def make(module, fqn):
        return MixPELinear.from_linear(module, config.act_bits, config.group_size, config.act_dtype, config.threads)

    swap_modules(model, pick, make)
    return model
