"""L-Mul in torch models: `frugalnn.convert_(model, LMulConfig(...))`.

    LMulConfig(mantissa_bits=4, rounding="truncate", offset=None, scope="attention")

scope="attention": inside every attention module (class name containing "Attention", narrowed
further by `filter_fn`), both attention matmuls run on L-Mul products: calls to
`F.scaled_dot_product_attention` are replaced by `lmul_sdpa` (Q.K^T and softmax.V through
`lmul_matmul`, the mask, causal flag, scale, dropout and grouped-query heads as torch defines
them), and `torch.matmul` / `Tensor.matmul` / `@` / `torch.bmm` by `lmul_matmul`, so eager-attention
models that multiply by hand are caught too. Any query length works: prefill, and cached
decoding steps with one query against many keys.
scope="all": additionally every linear layer becomes an `LMulLinear` (x @ W^T by L-Mul, bias
added in float32): `nn.Linear`, and linear-like leaf modules of other model code (a class named
*Linear holding a dense 2-D float `weight` [out, in] applied as x @ W^T, such as
frugalnn.models.llama's Linear). Elementwise multiplications (norms, activations, softmax, the
attention scale) stay float32 in both scopes.

Gradients are the exact product's (straight-through, see frugalnn.kernels.lmul_torch), so a
converted model can be fine-tuned.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from frugalnn.arith.lmul import ROUNDINGS, lmul_matmul, resolve_params
from frugalnn.convert import FilterFn, register_handler, swap_modules
from frugalnn.nn.routing import SDPA, RoutedModule, looks_like_attention, route_

SCOPES = ("attention", "all")


@dataclass
class LMulConfig:
    mantissa_bits: int = 4
    rounding: str = "truncate"
    offset: int | None = None  # l in 2^-l; None: the paper's l(m)
    scope: str = "attention"

    def __post_init__(self):
        resolve_params(self.mantissa_bits, self.rounding, self.offset)
        if self.scope not in SCOPES:
            raise ValueError(f"scope: expected one of {', '.join(map(repr, SCOPES))}, got {self.scope!r}")

    @property
    def offset_l(self) -> int:
        return resolve_params(self.mantissa_bits, self.rounding, self.offset)[2]

    def label(self) -> str:
        return f"L-Mul (m={self.mantissa_bits}, {self.rounding}, l={self.offset_l})"

    def matmul(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return lmul_matmul(a, b, self.mantissa_bits, self.rounding, self.offset_l)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LMulConfig":
        unknown = set(d) - {"mantissa_bits", "rounding", "offset", "scope"}
        if unknown:
            raise ValueError(f"LMulConfig: unknown keys {sorted(unknown)}")
        return cls(**d)


class LMulLinear(torch.nn.Module):
    """nn.Linear whose products are L-Mul: y = lmul_matmul(x, W^T) + b (the same weight and bias Parameters)."""

    def __init__(self, linear: torch.nn.Module, config: LMulConfig):
        super().__init__()
        self.out_features, self.in_features = linear.weight.shape
        self.weight = linear.weight
        self.bias = getattr(linear, "bias", None)
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.config.matmul(x, self.weight.t())  # W^T is a transposed view: the kernel reads it without a copy
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(x.dtype) if x.is_floating_point() else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, {self.config.label()}")


def sdpa_with(matmul):
    """A drop-in for F.scaled_dot_product_attention whose two matmuls are `matmul(a, b)` (float32 results)."""

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if is_causal and attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
        if enable_gqa and key.size(-3) != query.size(-3):
            groups = query.size(-3) // key.size(-3)
            key = key.repeat_interleave(groups, dim=-3)
            value = value.repeat_interleave(groups, dim=-3)
        q_len, k_len = query.size(-2), key.size(-2)
        scale = 1.0 / math.sqrt(query.size(-1)) if scale is None else scale
        scores = matmul(query, key.transpose(-2, -1)) * scale  # scaled after the product, as eager BERT/Llama do
        if is_causal:  # torch's convention: top-left aligned, query i sees keys 0..i
            keep = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device).tril()
            scores = scores.masked_fill(~keep, float("-inf"))
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                scores = scores.masked_fill(~attn_mask, float("-inf"))
            else:
                scores = scores + attn_mask.to(scores.dtype)
        probs = torch.softmax(scores, dim=-1)
        if dropout_p > 0.0:
            probs = F.dropout(probs, p=dropout_p, training=True)
        return matmul(probs, value).to(query.dtype)

    return sdpa


def matmul_with(matmul, original):
    """torch.matmul / Tensor.matmul / @ / bmm replacement: floating operands go through `matmul`."""

    def routed(input, other, *, out=None):
        if out is not None or not (input.is_floating_point() and other.is_floating_point()):
            return original(input, other) if out is None else original(input, other, out=out)
        dtype = torch.promote_types(input.dtype, other.dtype)
        return matmul(input, other).to(dtype)

    return routed


def attention_routes_for(matmul) -> dict:
    """Routes for nn.routing.route_: SDPA and every matmul entry point, all through `matmul(a, b)`."""
    routes = {SDPA: sdpa_with(matmul)}
    for fn in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm, torch.Tensor.bmm):
        routes[fn] = matmul_with(matmul, fn)
    return routes


def lmul_sdpa(config: LMulConfig):
    """F.scaled_dot_product_attention with both matmuls on L-Mul products."""
    return sdpa_with(config.matmul)


def attention_routes(config: LMulConfig) -> dict:
    return attention_routes_for(config.matmul)


def is_linear(module: torch.nn.Module) -> bool:
    """nn.Linear, or a linear-like leaf module (class named *Linear with a dense 2-D float weight [out, in]).

    Raises ValueError for a linear-like leaf without a dense weight (e.g. a lookup-table quantized
    layer): L-Mul is defined on float operands, so converting it silently would be a lie.
    """
    if isinstance(module, torch.nn.Linear):
        return True
    if "linear" not in type(module).__name__.lower() or isinstance(module, LMulLinear) or next(module.children(), None):
        return False
    w = getattr(module, "weight", None)
    if isinstance(w, torch.Tensor) and w.dim() == 2 and w.is_floating_point():
        return True
    raise ValueError(f"model: {type(module).__name__} has no dense float weight to run on L-Mul products "
                     "(load the model with float weights, e.g. bits='fp32')")


@register_handler(LMulConfig)
def _convert_lmul(model: torch.nn.Module, config: LMulConfig, filter_fn: FilterFn | None):
    def wanted(m, fqn):
        return filter_fn is None or filter_fn(m, fqn)

    for fqn, m in model.named_modules():
        if isinstance(m, LMulLinear):
            raise ValueError(f"model: {fqn} is already an LMulLinear; convert a fresh copy")
    swapped = 0
    if config.scope == "all":
        swapped = swap_modules(model, lambda m, fqn: wanted(m, fqn) and is_linear(m),
                               lambda m, fqn: LMulLinear(m, config))
    has_attention = any(looks_like_attention(m, fqn) and wanted(m, fqn) for fqn, m in model.named_modules()
                        if not isinstance(m, RoutedModule))
    if config.scope == "attention" or has_attention:
        route_(model, attention_routes(config), f"{config.label()} attention",
               lambda m, fqn: looks_like_attention(m, fqn) and wanted(m, fqn))
    elif swapped == 0:
        raise ValueError("model: no nn.Linear or attention module selected for L-Mul")
    return model


__all__ = ["LMulConfig", "LMulLinear", "ROUNDINGS", "SCOPES", "attention_routes", "attention_routes_for",
           "is_linear", "lmul_sdpa", "matmul_with", "sdpa_with"]
