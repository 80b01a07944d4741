"""The pieces of a Llama block: RMSNorm, RoPE on adjacent pairs, grouped-query attention over a
preallocated KV cache, and SwiGLU. Linear layers are frugalnn.tmac.LUTLinear (LUT weights) or
DenseLinear (float32). Every module is `Watched` (frugalnn.watch), so the compiled decoder sees
any change of structure.

Shapes: B batch, T new tokens, S tokens attended (cache + new), H query heads, Hkv key/value
heads, G = H / Hkv, D head_dim.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugalnn._arrays import threads_arg
from frugalnn.tmac.nn import LUTLinear
from frugalnn.watch import Watched


class ModuleList(Watched, nn.ModuleList):
    pass


class Embedding(Watched, nn.Embedding):
    pass


class StoredEmbedding(Watched):
    """The token embedding as the GGUF file stores it (Q8_0, Q4_K, F16, ...), rows dequantized on demand.

    A decode step reads one row of the table, so holding it as float32 (SmolLM2: 113 MB for a 30 MB Q8_0 tensor)
    buys nothing; here the rows stay in the file's read-only memory map, as llama.cpp keeps them, and only the
    rows looked up are dequantized (by the gguf package, the reference dequantizer). `weight` builds the whole
    float32 table for code that asks for it. The load checks every row is finite once (frugalnn.llm.load).
    """

    def __init__(self, tensor, vocab: int, dim: int):
        super().__init__()
        self.tensor = tensor  # frugalnn.llm.gguf_reader.Tensor: .data rows of the stored type, memory-mapped
        self.num_embeddings, self.embedding_dim = vocab, dim

    def rows(self, ids) -> np.ndarray:
        """float32 [len(ids), dim] for token ids (an IndexError names an id out of range)."""
        import gguf

        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        bad = (ids < 0) | (ids >= self.num_embeddings)
        if bad.any():
            raise IndexError(f"token id {int(ids[bad][0])} is out of range for a vocabulary of {self.num_embeddings}")
        out = gguf.quants.dequantize(np.asarray(self.tensor.data[ids]), self.tensor.tensor_type)
        return np.ascontiguousarray(out, dtype=np.float32).reshape(len(ids), self.embedding_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.rows(tokens.cpu().numpy())).reshape(*tokens.shape, self.embedding_dim)

    @property
    def weight(self) -> torch.Tensor:
        return torch.from_numpy(self.rows(np.arange(self.num_embeddings)))

    def __deepcopy__(self, memo):
        # the memory map is read-only and shared: a copy of the model reads the same rows
        twin = StoredEmbedding.__new__(StoredEmbedding)
        memo[id(self)] = twin
        twin.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items() if k != "tensor"})
        twin.__dict__["tensor"] = self.tensor
        return twin

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, stored as {self.tensor.tensor_type.name}"


class RMSNorm(Watched):
    def __init__(self, weight: torch.Tensor, eps: float):
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.eps = eps
        self.shape = (weight.shape[0],)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Written out rather than F.rms_norm: on CPU float32 that one makes two dtype copies and
        # about ten kernel calls per invocation (5x slower at decode sizes); same arithmetic as HF.
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True).add_(self.eps)) * self.weight


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


class DenseLinear(Watched, nn.Linear):
    """y = x W^T with a float32 weight [N, K] and no bias: the fp32 layers (LUT-weight layers are
    frugalnn.tmac.LUTLinear). A real nn.Linear, so `convert_(model, LUTConfig(...))` can swap it.

    threads: for the compiled decoder's dense GEMV (torch-path matmuls follow torch.set_num_threads).
    """

    def __init__(self, weight: torch.Tensor, threads: int | None = None):
        if not isinstance(weight, torch.Tensor) or weight.dtype != torch.float32 or weight.dim() != 2:
            is_tensor = isinstance(weight, torch.Tensor)
            what = f"{weight.dtype} {tuple(weight.shape)}" if is_tensor else type(weight).__name__
            raise TypeError(f"weight: expected a 2-D float32 tensor, got {what}")
        # built on the meta device: no [N, K] allocation and random init for a weight replaced at once
        super().__init__(weight.shape[1], weight.shape[0], bias=False, device="meta")
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.set_threads(threads)

    def set_threads(self, threads: int | None) -> None:
        threads_arg(threads)
        self.threads = threads

    @property
    def nbytes(self) -> int:
        return self.weight.numel() * self.weight.element_size()


class StackedLinear(Watched):
    """Several LUT layers on the same input, outputs concatenated (a fused projection whose parts
    must keep their own weights, e.g. ternary with one scale per projection)."""

    def __init__(self, parts: list[LUTLinear]):
        super().__init__()
        self.parts = ModuleList(parts)
        self.in_features = parts[0].in_features
        self.out_features = sum(p.out_features for p in parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p.forward(x) for p in self.parts], dim=-1)


class LlamaAttention(Watched):
    """Grouped-query attention with RoPE and a preallocated KV cache.

    Every attention product goes through F.scaled_dot_product_attention (so frugalnn.routing
    can swap it), with plain 4-D arguments and no `enable_gqa`:
      - decode (T == 1): q is viewed as [B, Hkv, G, D] against the cache's k/v [B, Hkv, S, D],
        no mask: one kv head's G query heads ride in the query-length slot, nothing is copied;
        with G == 1 (no GQA) this is the ordinary query length 1;
      - prefill (T > 1): q [B, H, T, D], k/v repeated to H heads, is_causal when the cache was
        empty, otherwise an explicit boolean mask [T, S].
    """

    def __init__(self, wqkv: nn.Module, wo: nn.Module, n_heads: int, n_kv_heads: int, head_dim: int, rope_dim: int):
        super().__init__()
        self.wqkv, self.wo = wqkv, wo  # q, k, v projections fused row-wise: one kernel call instead of three
        self.n_heads, self.n_kv_heads, self.head_dim, self.rope_dim = n_heads, n_kv_heads, head_dim, rope_dim
        self.group = n_heads // n_kv_heads
        self.qk_v_split = ((n_heads + n_kv_heads) * head_dim, n_kv_heads * head_dim)
        self.q_k_split = (n_heads, n_kv_heads)
        self.k_cache: torch.Tensor | None = None  # [B, Hkv, max_len, D], views into the model's cache
        self.v_cache: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, rot: torch.Tensor, start: int, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = x.shape
        H, Hkv, D = self.n_heads, self.n_kv_heads, self.head_dim
        qkv = self.wqkv.forward(x)
        # q and k sit side by side in the fused output: one RoPE call turns both
        qk, v = qkv.split(self.qk_v_split, dim=-1)
        q, k = apply_rope(qk.view(B, T, H + Hkv, D), rot, self.rope_dim).split(self.q_k_split, dim=2)
        v = v.view(B, T, Hkv, D)
        if start < 0 or self.k_cache is None:  # cache-free pass (start = -1)
            keys, values = k.transpose(1, 2), v.transpose(1, 2)
        else:
            end = start + T
            k_cache, v_cache = self.k_cache, self.v_cache
            if B != k_cache.shape[0]:
                k_cache, v_cache = k_cache.narrow(0, 0, B), v_cache.narrow(0, 0, B)
            k_cache.narrow(2, start, T).copy_(k.transpose(1, 2))
            v_cache.narrow(2, start, T).copy_(v.transpose(1, 2))
            keys, values = k_cache.narrow(2, 0, end), v_cache.narrow(2, 0, end)
        if T == 1:
            o = F.scaled_dot_product_attention(q.reshape(B, Hkv, self.group, D), keys, values)
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
        return self.wo.forward(o.reshape(B, T, H * D))


class SwiGLU(Watched):
    """down(silu(gate x) * up x), gate and up fused row-wise into one weight [2 * ffn, dim]."""

    def __init__(self, gate_up: nn.Module, down: nn.Module):
        super().__init__()
        self.gate_up, self.down = gate_up, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up.forward(x).chunk(2, dim=-1)
        return self.down.forward(F.silu(gate) * up)


class Block(Watched):
    def __init__(self, attn_norm: RMSNorm, attention: LlamaAttention, ffn_norm: RMSNorm, mlp: SwiGLU):
        super().__init__()
        self.attn_norm, self.attention, self.ffn_norm, self.mlp = attn_norm, attention, ffn_norm, mlp

    def forward(self, x: torch.Tensor, rot: torch.Tensor, start: int, mask: torch.Tensor | None) -> torch.Tensor:
        # leaf modules are called through .forward (no hook machinery: ~2 us saved per call, 8 per
        # layer); attention keeps __call__ so frugalnn.routing wrappers and hooks still apply
        h = x + self.attention(self.attn_norm.forward(x), rot, start, mask)
        return h + self.mlp.forward(self.ffn_norm.forward(h))
