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
added in float32): `nn.Linear` (frugalnn.llm's DenseLinear is one), and linear-like leaf modules of other
model code (a class named *Linear holding a dense 2-D float `weight` [out, in] applied as x @ W^T).
Elementwise multiplications (norms, activations, softmax, the
attention scale) stay float32 in both scopes.

Gradients are the exact product's (straight-through, see below), so a
converted model can be fine-tuned.

The kernels as torch operators, `torch.ops.frugalnn.lmul` and `torch.ops.frugalnn.lmul_matmul`:
registered with `torch.library.custom_op` (+ `register_fake`, so they trace under torch.compile)
and with a FLOP formula for `torch.utils.flop_counter` (2 FLOPs per multiply-accumulate, the
convention of the counter's own matmul formulas), so cost profilers count converted models.
Both take canonical shapes; `frugalnn.lmul.arith` does broadcasting and matmul's shape rules
with ordinary torch ops around them, so autograd handles those.

Gradient (documented choice): the exact product's. For y = lmul(a, b) the backward is
da = g * b, db = g * a; for C = lmul_matmul(A, B) it is dA = g @ B^T, dB = A^T @ g, computed
in float32 by torch. This is the straight-through estimator for the approximation: L-Mul's
own derivative is piecewise constant in the mantissas (zero almost everywhere after the
operands are rounded to m bits), which would stop training.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import register_flop_formula

from frugalnn.convert import FilterFn, register_handler, swap_modules
from frugalnn.kernels import lmul as _kernels
from frugalnn.lmul.arith import ROUNDINGS, lmul_matmul, resolve_params
from frugalnn.routing import SDPA, RoutedModule, looks_like_attention, route_

Tensor = torch.Tensor


def _numpy(t: Tensor, name: str):
    if t.device.type != "cpu":
        raise ValueError(f"{name}: expected a CPU tensor, got one on {t.device}")
    if t.dtype != torch.float32:
        raise TypeError(f"{name}: expected dtype torch.float32, got {t.dtype}")
    return t.detach().contiguous().numpy()


@torch.library.custom_op("frugalnn::lmul", mutates_args=(), device_types="cpu")
def lmul_op(a: Tensor, b: Tensor, mantissa_bits: int, nearest: bool, offset: int) -> Tensor:
    """Elementwise L-Mul of two float32 tensors of one shape."""
    if a.shape != b.shape:
        raise ValueError(f"b: expected the shape of a {tuple(a.shape)}, got {tuple(b.shape)}")
    out = _kernels.elementwise(_numpy(a, "a").reshape(-1), _numpy(b, "b").reshape(-1), mantissa_bits, nearest,
                               offset, threads=torch.get_num_threads())
    return torch.from_numpy(out).view(a.shape)


@lmul_op.register_fake
def _lmul_fake(a, b, mantissa_bits, nearest, offset):
    return torch.empty_like(a)


def _lmul_setup(ctx, inputs, output):
    a, b = inputs[:2]
    ctx.save_for_backward(a, b)


def _lmul_backward(ctx, grad):
    a, b = ctx.saved_tensors
    return grad * b, grad * a, None, None, None


lmul_op.register_autograd(_lmul_backward, setup_context=_lmul_setup)


@torch.library.custom_op("frugalnn::lmul_matmul", mutates_args=(), device_types="cpu")
def lmul_matmul_op(a: Tensor, b: Tensor, mantissa_bits: int, nearest: bool, offset: int,
                   transpose_b: bool) -> Tensor:
    """a [B, M, K] @ b [B, K, N] (or b [B, N, K] with transpose_b) -> [B, M, N], products by L-Mul."""
    out = _kernels.matmul(_numpy(a, "a"), _numpy(b, "b"), mantissa_bits, nearest, offset, transpose_b=transpose_b,
                          threads=torch.get_num_threads())
    return torch.from_numpy(out)


@lmul_matmul_op.register_fake
def _lmul_matmul_fake(a, b, mantissa_bits, nearest, offset, transpose_b):
    n = b.shape[1] if transpose_b else b.shape[2]
    return a.new_empty((a.shape[0], a.shape[1], n))


def _matmul_setup(ctx, inputs, output):
    a, b = inputs[:2]
    ctx.transpose_b = inputs[5]
    ctx.save_for_backward(a, b)


def _matmul_backward(ctx, grad):
    a, b = ctx.saved_tensors
    need_a, need_b = ctx.needs_input_grad[:2]
    ga = gb = None
    if ctx.transpose_b:  # C = A @ B^T with b = B^T stored [B, N, K]
        if need_a:
            ga = torch.bmm(grad, b)
        if need_b:
            gb = torch.bmm(grad.transpose(1, 2), a)
    else:
        if need_a:
            ga = torch.bmm(grad, b.transpose(1, 2))
        if need_b:
            gb = torch.bmm(a.transpose(1, 2), grad)
    return ga, gb, None, None, None, None


lmul_matmul_op.register_autograd(_matmul_backward, setup_context=_matmul_setup)


@register_flop_formula(torch.ops.frugalnn.lmul_matmul)
def _lmul_matmul_flops(a_shape, b_shape, mantissa_bits=None, nearest=None, offset=None, transpose_b=False,
                       *args, out_shape=None, **kwargs) -> int:
    """2 * batch * M * K * N: one L-Mul and one float32 addition per multiply-accumulate."""
    batch, m, k = a_shape
    n = b_shape[1] if transpose_b else b_shape[2]
    return 2 * batch * m * k * n


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
