"""The pieces of a Llama block: RMSNorm, RoPE on adjacent pairs, a linear layer with a pluggable
weight backend, grouped-query attention over a preallocated KV cache, and SwiGLU.

Shapes: B batch, T new tokens, S tokens attended (cache + new), H query heads, Hkv key/value
heads, G = H / Hkv, D head_dim.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, weight: torch.Tensor, eps: float):
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.eps = eps
        self.shape = (weight.shape[0],)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.shape, self.weight, self.eps)


def rope_table(rope_dim: int, max_pos: int, base: float, linear_scale: float = 1.0) -> torch.Tensor:
    """Complex rotations [max_pos, rope_dim/2]: position p turns pair i by p / scale * base^(-2i/rope_dim)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, rope_dim, 2, dtype=torch.float64) / rope_dim))
    pos = torch.arange(max_pos, dtype=torch.float64) / linear_scale
    angles = torch.outer(pos, inv_freq)
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


def apply_rope(x: torch.Tensor, rot: torch.Tensor, rope_dim: int) -> torch.Tensor:
    """x [B, T, heads, D]; rot [T, 1, rope_dim/2] complex. Rotates adjacent pairs (GGUF's layout)."""
    if rope_dim == x.shape[-1]:
        xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * rot).flatten(-2)
    head, tail = x[..., :rope_dim], x[..., rope_dim:]
    xc = torch.view_as_complex(head.reshape(*head.shape[:-1], -1, 2))
    return torch.cat([torch.view_as_real(xc * rot).flatten(-2), tail], dim=-1)


class Linear(nn.Module):
    """y = x W^T where W is either a float32 tensor [N, K] or a frugalnn.lut.LUTWeight.

    The backend is fixed at construction so forward does no per-call dispatch work.
    """

    def __init__(self, weight: Any, threads: int | None = None):
        super().__init__()
        self.threads = threads
        if isinstance(weight, torch.Tensor):
            if weight.dtype != torch.float32 or weight.dim() != 2:
                raise TypeError(f"weight: expected a 2-D float32 tensor, got {weight.dtype} {tuple(weight.shape)}")
            self.weight = nn.Parameter(weight, requires_grad=False)
            self.backend = "fp32"
            self.out_features, self.in_features = weight.shape
            self.forward = self._dense  # type: ignore[method-assign]
        else:
            self.lut = weight
            kind = "ternary" if getattr(weight, "kind", "") == "ternary" else f"{weight.bits}-bit g{weight.group_size}"
            self.backend = f"lut {kind} ({getattr(weight, 'source', '')})"
            self.out_features, self.in_features = int(weight.shape[0]), int(weight.shape[1])
            from frugalnn.lut import matmul

            self._lut_matmul = matmul
            self.forward = self._lut  # type: ignore[method-assign]

    def _dense(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)

    def _lut(self, x: torch.Tensor) -> torch.Tensor:
        return self._lut_matmul(x, self.lut, threads=self.threads)

    def nbytes(self) -> int:
        if self.backend == "fp32":
            return self.weight.numel() * 4
        return int(self.lut.nbytes)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, weight={self.backend}"


class LlamaAttention(nn.Module):
    """Grouped-query attention with RoPE and a preallocated KV cache.

    Every attention product goes through F.scaled_dot_product_attention (so frugalnn.nn.routing
    can swap it), with plain 4-D arguments and no `enable_gqa`:
      - decode (T == 1): q is viewed as [B, Hkv, G, D] against the cache's k/v [B, Hkv, S, D],
        no mask: one kv head's G query heads ride in the query-length slot, nothing is copied;
        with G == 1 (no GQA) this is the ordinary query length 1;
      - prefill (T > 1): q [B, H, T, D], k/v repeated to H heads, is_causal when the cache was
        empty, otherwise an explicit boolean mask [T, S].
    """

    def __init__(self, wq: Linear, wk: Linear, wv: Linear, wo: Linear, n_heads: int, n_kv_heads: int,
                 head_dim: int, rope_dim: int):
        super().__init__()
        self.wq, self.wk, self.wv, self.wo = wq, wk, wv, wo
        self.n_heads, self.n_kv_heads, self.head_dim, self.rope_dim = n_heads, n_kv_heads, head_dim, rope_dim
        self.group = n_heads // n_kv_heads
        self.k_cache: torch.Tensor | None = None  # [B, Hkv, max_len, D], views into the model's cache
        self.v_cache: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, rot: torch.Tensor, start: int, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = x.shape
        H, Hkv, D = self.n_heads, self.n_kv_heads, self.head_dim
        q = apply_rope(self.wq(x).view(B, T, H, D), rot, self.rope_dim)
        k = apply_rope(self.wk(x).view(B, T, Hkv, D), rot, self.rope_dim)
        v = self.wv(x).view(B, T, Hkv, D)
        if start < 0 or self.k_cache is None:  # cache-free pass (start = -1)
            keys, values = k.transpose(1, 2), v.transpose(1, 2)
        else:
            end = start + T
            self.k_cache[:B, :, start:end] = k.transpose(1, 2)
            self.v_cache[:B, :, start:end] = v.transpose(1, 2)
            keys, values = self.k_cache[:B, :, :end], self.v_cache[:B, :, :end]
        if T == 1:
            o = F.scaled_dot_product_attention(q.view(B, Hkv, self.group, D), keys, values)
        else:
            if self.group > 1:
                keys = keys.repeat_interleave(self.group, dim=1)
                values = values.repeat_interleave(self.group, dim=1)
            q = q.transpose(1, 2)
            if mask is None:
                o = F.scaled_dot_product_attention(q, keys, values, is_causal=True)
            else:
                o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
            o = o.transpose(1, 2)
        return self.wo(o.reshape(B, T, H * D))


class SwiGLU(nn.Module):
    def __init__(self, gate: Linear, up: Linear, down: Linear):
        super().__init__()
        self.gate, self.up, self.down = gate, up, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, attn_norm: RMSNorm, attention: LlamaAttention, ffn_norm: RMSNorm, mlp: SwiGLU):
        super().__init__()
        self.attn_norm, self.attention, self.ffn_norm, self.mlp = attn_norm, attention, ffn_norm, mlp

    def forward(self, x: torch.Tensor, rot: torch.Tensor, start: int, mask: torch.Tensor | None) -> torch.Tensor:
        h = x + self.attention(self.attn_norm(x), rot, start, mask)
        return h + self.mlp(self.ffn_norm(h))
