"""One decoder layer at a time: the compiled decoder and the torch path on identical inputs
(tests/llm/test_fast.py, and `frugalnn bench llm` before it times).

A whole-model comparison of LUT-weight decoding amplifies every difference through all layers
(a 1-ulp change flips an int8 table entry, which moves the next layer's input, and so on), so its
size depends on the CPU. Here each layer i runs alone, three ways, on exactly the input the torch
path gave it at the last position of `ids` (same residual-stream vector, same KV cache rows):
  fast   the compiled decoder (frugalnn.llm.fast) over the layer's own LUTLinear modules;
  torch  the torch path over the same modules (LUTLinear's one-token kernel call);
  dense  the torch path with every LUTLinear replaced by a float32 DenseLinear holding its
         dequantized weight: the same weights without the int8 activation tables.
A one-layer Llama carries the layer (a new Block over the same norms and linear modules): its
embedding row 0 is the input vector, its final norm has unit weights and its head is the
identity, so its "logits" are the layer's output, RMS-normalized.

The bound (`LayerCheck.within_bound`): each path's output differs from `dense` by the int8
rounding of its own tables, and on identical inputs both paths build the same tables, except
where a float32 summation-order difference upstream in the layer (RMSNorm, attention, SiLU)
flips one entry's rounding by one table step. By the triangle inequality
    |fast - torch| <= |fast - dense| + |dense - torch| ~= 2 |torch - dense|,
with |torch - dense|, the layer's table error on this very input, measured rather than assumed.
Nothing is amplified across layers, so the bound holds on any CPU and either backend.
"""
from __future__ import annotations

import dataclasses

import torch

from frugalnn.llm.fast import Ineligible
from frugalnn.llm.layers import Block, DenseLinear, LlamaAttention, RMSNorm, StackedLinear, SwiGLU
from frugalnn.llm.model import Llama
from frugalnn.tmac import LUTLinear
from frugalnn.watch import attach


@dataclasses.dataclass
class LayerCheck:
    layer: int
    fast_vs_torch: float  # ||fast - torch|| / ||torch||
    table_error: float    # ||torch - dense|| / ||torch||: what the int8 tables cost this layer on this input
    update: float         # ||torch - normalized input|| / ||torch||: what the layer itself changes

    @property
    def within_bound(self) -> bool:
        """fast vs torch within twice the table error, and that bound far below what the layer does
        (else a layer that computed nothing, or the wrong thing, could pass)."""
        return self.fast_vs_torch <= 2 * self.table_error and 0 < self.table_error < 0.1 * self.update


def _same_layer(block: Block, linear=lambda lin: lin) -> Block:
    """A new Block over the same norms and linear layers (each passed through `linear`), with its own
    attention module, so its KV cache is its own. No copies: GGUF-backed tensors are views of the
    whole memory-mapped file, which torch's deepcopy would copy each time."""
    a, m = block.attention, block.mlp

    def lin(module):
        if isinstance(module, StackedLinear):
            return StackedLinear([linear(p) for p in module.parts])
        return linear(module)

    attention = LlamaAttention(lin(a.wqkv), lin(a.wo), a.n_heads, a.n_kv_heads, a.head_dim, a.rope_dim)
    return Block(block.attn_norm, attention, block.ffn_norm, SwiGLU(lin(m.gate_up), lin(m.down)))


def dequantized(layer: LUTLinear) -> DenseLinear:
    """The same weight in float32: the layer without the int8 activation tables."""
    return DenseLinear(torch.from_numpy(layer.lut_weight.dequantize()))


def _one_layer_model(model: Llama, block: Block, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     pos: int, identity: DenseLinear) -> Llama:
    c = model.config
    emb = torch.zeros(c.dim, c.dim)
    emb[0] = x.reshape(c.dim)
    sub = Llama(dataclasses.replace(c, n_layers=1, vocab_size=c.dim), emb, [block],
                RMSNorm(torch.ones(c.dim), c.norm_eps), identity, pos + 1)
    sub.setup_cache(pos + 1)
    sub._k[0, :, :, :pos] = k[:, :, :pos]
    sub._v[0, :, :, :pos] = v[:, :, :pos]
    return sub


def check_layers(model: Llama, ids: torch.Tensor, layers: list[int] | None = None) -> list[LayerCheck]:
    """Run each of `layers` (default: all) of a model with LUT weights alone on the torch path's input
    at the last position of ids [1, T] (T >= 2), the three ways above. Raises Ineligible when the
    compiled decoder refuses a layer (a converted or rerouted one)."""
    if ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] < 2:
        raise ValueError(f"ids: expected shape [1, T] with T >= 2, got {tuple(ids.shape)}")
    n = model.config.n_layers
    chosen = range(n) if layers is None else list(layers)
    if any(not 0 <= i < n for i in chosen):
        raise ValueError(f"layers: expected indices in 0..{n - 1}, got {chosen}")
    pos, was_on = ids.shape[1] - 1, model.fast_decode
    model.fast_decode = False
    try:
        model.setup_cache(pos + 1)
        model(ids[:, :pos], start=0)  # the cache rows every layer attends to
        with torch.inference_mode():
            x, rot, inputs = model.embedding(ids[:, pos:]), model.rope[pos:pos + 1], []
            for block in model.layers:
                inputs.append(x)
                x = block(x, rot, pos, None)
    finally:
        model.fast_decode = was_on
    token, identity = torch.tensor([[0]]), DenseLinear(torch.eye(model.config.dim))
    eps = model.config.norm_eps
    checks = []
    for i in chosen:
        block, k, v = model.layers[i], model._k[i], model._v[i]
        sub = _one_layer_model(model, _same_layer(block), inputs[i], k, v, pos, identity)
        if sub.fast_decode_reason():
            raise Ineligible(f"layer {i}: the compiled decoder refused it: {sub.fast_decode_reason()}")
        fast = sub(token, start=pos)
        sub.fast_decode = False
        torch_out = sub(token, start=pos)
        ref = _one_layer_model(model, _same_layer(block, dequantized), inputs[i], k, v, pos, identity)
        ref.fast_decode = False
        dense = ref(token, start=pos)
        x_in = inputs[i].reshape(-1)
        normalized_in = x_in * torch.rsqrt(x_in.pow(2).mean() + eps)
        scale = float(torch_out.norm())
        checks.append(LayerCheck(i, float((fast - torch_out).norm()) / scale, float((torch_out - dense).norm()) / scale,
                                 float((torch_out.reshape(-1) - normalized_in).norm()) / scale))
    attach(model, model._watch)  # the shared layers reported to the one-layer models' watches meanwhile
    return checks
