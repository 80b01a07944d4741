"""The fused 1-pass attention kernel as a torch op, and `convert_` for models that call SDPA.

    import frugalnn
    from frugalnn.fusemax.nn import FusedAttentionConfig
    frugalnn.convert_(model, FusedAttentionConfig(threads=4))

routes every `F.scaled_dot_product_attention` call made inside the model's attention modules
(class name containing "Attention", or `filter_fn`) to `torch.ops.frugalnn.fused_attention`.

The op is a `torch.library.custom_op` with a fake (meta) implementation, so converted models
trace under `torch.compile`; its FLOP formula (2 x MACs of the two matmuls, the full L x S score
matrix, as torch counts SDPA) is registered with `torch.utils.flop_counter`, so FlopCounterMode
and the project's cost profiler count it. Backward recomputes the attention matrix with torch
ops (correct gradients, O(L*S) memory): the memory saving is for inference.

SDPA arguments the kernel does not handle -- an `attn_mask`, `dropout_p > 0` -- raise ValueError
naming the argument, or with `unsupported="fallback"` run torch's own SDPA for that call (count
in `FusedAttentionConfig.fallbacks`). `enable_gqa=True` (grouped-query attention) is supported.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from frugalnn.convert import register_handler
from frugalnn.kernels import attention as kernel
from frugalnn.routing import SDPA, route_

UNSUPPORTED = ("error", "fallback")


@torch.library.custom_op("frugalnn::fused_attention", mutates_args=())
def fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = False,
                    scale: float | None = None, enable_gqa: bool = False, threads: int | None = None) -> torch.Tensor:
    """softmax(scale * q k^T) v over (..., L, E) x (..., S, E) x (..., S, Ev), float32 CPU tensors."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.device.type != "cpu":
            raise ValueError(f"{name}: the fused attention kernel runs on CPU tensors, got {t.device}")
        if t.dtype != torch.float32:
            raise TypeError(f"{name}: the fused attention kernel takes float32, got {t.dtype}")
    out = kernel.fused_attention(q.detach().contiguous(), k.detach().contiguous(), v.detach().contiguous(),
                                 causal=is_causal, scale=scale, enable_gqa=enable_gqa,
                                 threads=threads)
    return out


@fused_attention.register_fake
def _(q, k, v, is_causal=False, scale=None, enable_gqa=False, threads=None):
    return q.new_empty((*q.shape[:-1], v.shape[-1]))


def _reference(q, k, v, is_causal, scale, enable_gqa):
    """Differentiable torch math of the same function (used by backward)."""
    if enable_gqa and q.dim() >= 3 and k.shape[-3] != q.shape[-3]:
        group = q.shape[-3] // k.shape[-3]
        k = k.repeat_interleave(group, dim=-3)
        v = v.repeat_interleave(group, dim=-3)
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        l_, s_ = s.shape[-2], s.shape[-1]
        s = s.masked_fill(~torch.ones(l_, s_, dtype=torch.bool, device=s.device).tril(), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def _setup_context(ctx, inputs, output):
    q, k, v, is_causal, scale, enable_gqa, _ = inputs
    ctx.save_for_backward(q, k, v)
    ctx.options = (is_causal, scale, enable_gqa)


def _backward(ctx, grad):
    q, k, v = ctx.saved_tensors
    with torch.enable_grad():
        qq, kk, vv = (t.detach().requires_grad_(True) for t in (q, k, v))
        out = _reference(qq, kk, vv, *ctx.options)
        gq, gk, gv = torch.autograd.grad(out, (qq, kk, vv), grad)
    return gq, gk, gv, None, None, None, None


fused_attention.register_autograd(_backward, setup_context=_setup_context)


def attention_flops(q_shape, k_shape, v_shape) -> int:
    """2 x MACs of softmax attention: q k^T (L*S*E per head) and p v (L*S*Ev per head)."""
    *batch, l, e = q_shape
    s, ev = k_shape[-2], v_shape[-1]
    heads = math.prod(batch) if batch else 1
    return 2 * heads * l * s * (e + ev)


def _register_flops() -> None:
    from torch.utils.flop_counter import register_flop_formula

    @register_flop_formula(torch.ops.frugalnn.fused_attention)
    def _flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
        return attention_flops(q_shape, k_shape, v_shape)


_register_flops()


@dataclass
class FusedAttentionConfig:
    """Route SDPA inside attention modules to the fused 1-pass kernel.

    threads: kernel threads (None = all cores). unsupported: "error" raises ValueError on an
    SDPA argument the kernel lacks (attn_mask, dropout_p > 0); "fallback" runs torch's SDPA
    for that call instead and counts it in `fallbacks` (not serialised).
    """

    threads: int | None = None
    unsupported: str = "error"
    fallbacks: int = field(default=0, compare=False, repr=False)

    def __post_init__(self):
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads: expected None or a positive int, got {self.threads!r}")
        if self.unsupported not in UNSUPPORTED:
            raise ValueError(f"unsupported: expected one of {UNSUPPORTED}, got {self.unsupported!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("fallbacks")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FusedAttentionConfig":
        unknown = set(d) - {"threads", "unsupported"}
        if unknown:
            raise ValueError(f"FusedAttentionConfig: unknown keys {sorted(unknown)}")
        return cls(**d)


def sdpa_via_kernel(config: FusedAttentionConfig):
    """An SDPA-compatible function that runs the fused kernel (or rejects / falls back)."""
    threads = config.threads  # None: all cores

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
             **extra: Any):
        problem = None
        if extra:
            problem = f"arguments {sorted(extra)}"
        elif attn_mask is not None:
            problem = "attn_mask (only is_causal masking is fused; pass unsupported='fallback' to keep masks)"
        elif dropout_p:
            problem = f"dropout_p={dropout_p} (the kernel has no dropout; use model.eval() or fallback)"
        elif query.dtype != torch.float32 or query.device.type != "cpu":
            problem = f"a {query.dtype} tensor on {query.device} (the kernel takes float32 on CPU)"
        if problem is not None:
            if config.unsupported == "error":
                raise ValueError(f"FusedAttentionConfig: scaled_dot_product_attention called with {problem}")
            config.fallbacks += 1
            return SDPA(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                        scale=scale, enable_gqa=enable_gqa, **extra)
        return torch.ops.frugalnn.fused_attention(query, key, value, is_causal, scale, enable_gqa, threads)

    return sdpa


@register_handler(FusedAttentionConfig)
def _convert(model, config: FusedAttentionConfig, filter_fn):
    route_(model, {SDPA: sdpa_via_kernel(config)}, "frugalnn fused 1-pass attention", filter_fn)
    return model
