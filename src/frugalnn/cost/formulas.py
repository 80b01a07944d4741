"""What each torch op costs: FLOP formulas, the ops that are free by convention, fvcore's extras.

Units. A formula returns FLOPs in torch's convention (2 per multiply-accumulate), exactly like the
formulas in `torch.utils.flop_counter.flop_registry`; `profile` divides by two to report MACs.

Lookup order for an op (an `OpOverload` seen under TorchDispatchMode):
1. `torch.utils.flop_counter.flop_registry`, read at call time, so a formula anyone registers with
   `torch.utils.flop_counter.register_flop_formula(torch.ops.mylib.op)` is honoured (this is how
   frugalnn's custom ops and other libraries' kernels get counted without this module knowing them);
2. `EXTRA_FORMULAS` below: matmul-family ops torch has no formula for (mv, dot, addmv, addbmm, ...),
   the CPU fused attention kernel, and the fused inference paths of nn.MultiheadAttention and
   nn.TransformerEncoderLayer, which torch 2.13 leaves uncounted;
3. otherwise the op is *free* (`is_free`: views, pointwise, reductions, norms, pooling, copies,
   factories: 0 MACs by the fvcore/pycls convention) or *unsupported* (seen, not counted, reported).
"""
from __future__ import annotations

from math import prod
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils import flop_counter

aten = torch.ops.aten
Formula = Callable[..., int]


def _shape(x: Any) -> Any:
    return x.shape if isinstance(x, torch.Tensor) else x


def _shaped(fn: Callable[..., int]) -> Formula:
    """Same calling convention as torch's registry: tensors in, `out_val=` keyword for the output."""
    def formula(*args, out_val=None, **kwargs):
        return fn(*[_shape(a) for a in args], **{k: _shape(v) for k, v in kwargs.items()})
    formula.__name__ = fn.__name__
    return formula


@_shaped
def _mv(a, v, *args, **kwargs) -> int:           # a: [m, k], v: [k]
    return 2 * a[0] * a[1]


@_shaped
def _addmv(bias, a, v, *args, **kwargs) -> int:  # bias + a @ v
    return 2 * a[0] * a[1]


@_shaped
def _dot(a, b, *args, **kwargs) -> int:          # a, b: [k]
    return 2 * a[0]


@_shaped
def _addbmm(bias, a, b, *args, **kwargs) -> int:  # sum over the batch of a[i] @ b[i]: [b, m, k] @ [b, k, n]
    return 2 * a[0] * a[1] * a[2] * b[2]


@_shaped
def _addr(bias, u, v, *args, **kwargs) -> int:   # bias + outer(u, v): one multiply per output, no sum
    return 2 * u[0] * v[0]


@_shaped
def _sdpa_cpu(q, k, v, *args, **kwargs) -> int:
    """q: [..., h_q, s_q, d], k: [..., h_kv, s_k, d], v: [..., h_kv, s_k, d_v] (GQA: h_q multiple of h_kv).

    Two matmuls per query head: scores = q @ k^T and out = softmax(scores) @ v; the softmax and the
    scaling are pointwise (free by convention), and a causal mask is not discounted (as in torch).
    """
    batch = prod(q[:-2])
    s_q, d = q[-2], q[-1]
    s_k, d_v = k[-2], v[-1]
    return 2 * batch * s_q * s_k * (d + d_v)


def _sequence_lengths(x: torch.Tensor) -> list[int]:
    """Lengths of the sequences in a [batch, length, embed] tensor, nested (padding-free) or not."""
    if x.is_nested:
        return [t.shape[0] for t in x.unbind()]
    return [x.shape[-2]] * (x.shape[0] if x.dim() == 3 else 1)


def _native_mha(query, key, value, embed_dim, num_heads, *args, out_val=None, **kwargs) -> int:
    """The fused nn.MultiheadAttention inference path: q/k/v projections, attention, output projection."""
    e = int(embed_dim)
    lq, lk = _sequence_lengths(query), _sequence_lengths(key)
    projections = sum(q + 2 * k for q, k in zip(lq, lk)) * e * e + sum(lq) * e * e
    attention = sum(2 * q * k for q, k in zip(lq, lk)) * e
    return 2 * (projections + attention)


def _encoder_layer(src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias, use_gelu, norm_first,
                   eps, nw1, nb1, nw2, nb2, ffn_weight_1, *args, out_val=None, **kwargs) -> int:
    """The fused nn.TransformerEncoderLayer inference path: self-attention block plus the two FFN linears."""
    e, f = int(embed_dim), ffn_weight_1.shape[0]
    lengths = _sequence_lengths(src)
    tokens = sum(lengths)
    return 2 * (4 * tokens * e * e + sum(2 * n * n for n in lengths) * e + 2 * tokens * e * f)


EXTRA_FORMULAS: dict[Any, Formula] = {
    aten.mv: _mv,
    aten.addmv: _addmv,
    aten.dot: _dot,
    aten.vdot: _dot,
    aten.addbmm: _addbmm,
    aten.addr: _addr,
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu,
    aten._native_multi_head_attention: _native_mha,
    aten._transformer_encoder_layer_fwd: _encoder_layer,
}


def flop_formula(func) -> Formula | None:
    """The FLOP formula for an OpOverload, or None (see the module docstring for the order)."""
    packet = getattr(func, "_overloadpacket", func)
    formula = flop_counter.flop_registry.get(packet)
    if formula is None:
        formula = EXTRA_FORMULAS.get(packet)
    return formula


# Ops that carry no multiply-accumulates by convention (besides views, pointwise and reduction
# ops, which torch tags). Norms and pooling are here: pycls counts neither; fvcore's extras for
# them are available with convention="fvcore" (FVCORE_EXTRAS below).
_FREE_NAMES = frozenset("""
    empty empty_like empty_strided new_empty new_empty_strided zeros zeros_like ones ones_like full full_like
    new_zeros new_ones new_full scalar_tensor arange linspace logspace eye tensor lift_fresh lift_fresh_copy
    rand rand_like randn randn_like randint randint_like randperm normal uniform bernoulli multinomial
    squeeze unsqueeze transpose t as_strided swapdims swapaxes view reshape expand permute
    clone copy copy_ _to_copy to contiguous detach alias _unsafe_view view_copy _copy_from _copy_from_and_resize
    cat stack hstack vstack split split_with_sizes chunk unbind constant_pad_nd pad reflection_pad1d
    reflection_pad2d replication_pad1d replication_pad2d replication_pad3d flip roll repeat repeat_interleave
    tile index index_select index_put index_put_ index_add index_copy index_fill gather scatter scatter_add
    scatter_reduce masked_fill masked_scatter masked_select slice_scatter select_scatter diagonal_scatter
    embedding embedding_bag _embedding_bag nonzero where tril triu fill fill_ zero zero_ resize_ set_
    native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training
    _native_batch_norm_legit_functional _batch_norm_with_update _batch_norm_no_update batch_norm_stats
    native_layer_norm native_group_norm _fused_rms_norm rms_norm
    max_pool1d max_pool2d max_pool3d max_pool2d_with_indices max_pool3d_with_indices avg_pool1d avg_pool2d
    avg_pool3d adaptive_avg_pool1d _adaptive_avg_pool2d _adaptive_avg_pool3d adaptive_max_pool1d
    adaptive_max_pool2d adaptive_max_pool3d upsample_nearest1d upsample_nearest2d upsample_nearest3d
    upsample_bilinear2d upsample_bicubic2d upsample_linear1d upsample_trilinear3d _upsample_nearest_exact2d
    _upsample_bilinear2d_aa pixel_shuffle pixel_unshuffle im2col col2im grid_sampler_2d
    _softmax softmax _log_softmax log_softmax _safe_softmax native_dropout dropout feature_dropout
    nll_loss_forward nll_loss2d_forward mse_loss l1_loss smooth_l1_loss huber_loss binary_cross_entropy
    binary_cross_entropy_with_logits kl_div
    sort argsort topk kthvalue unique _unique2 unique_consecutive unique_dim cumsum cumprod cummax cummin
    bucketize searchsorted histc bincount one_hot _local_scalar_dense item equal allclose is_nonzero
    sym_size sym_stride sym_numel sym_storage_offset size stride numel dim is_contiguous
    _assert_async _assert_tensor_metadata _functional_assert_async record_stream
""".split())


def is_free(func) -> bool:
    """True for ops with zero MACs by convention (views, pointwise, reductions, norms, pools, copies)."""
    if getattr(func, "is_view", False):
        return True
    tags = getattr(func, "tags", ())
    if torch.Tag.pointwise in tags or torch.Tag.reduction in tags or torch.Tag.view_copy in tags:
        return True
    packet = getattr(func, "_overloadpacket", None)
    if packet is None:
        return False
    namespace, _, name = packet._qualified_op_name.partition("::")
    if namespace == "prim":  # TorchScript metadata ops (prim::device, prim::layout)
        return True
    return namespace in ("aten", "prims") and (name in _FREE_NAMES or name.rstrip("_") in _FREE_NAMES)


def op_name(func) -> str:
    """'aten::convolution', 'mylib::lut_linear' (the overload-free schema name)."""
    packet = getattr(func, "_overloadpacket", None)
    return packet._qualified_op_name if packet is not None else getattr(func, "__name__", str(func))


# fvcore's convention adds these (counted at the torch.nn.functional level, which is where
# fvcore's traced graph sees them; at the dispatch level a 1x1 adaptive pool is just a `mean`).
# Values are MACs in fvcore's unit (one "flop" per element, as fvcore's handles define them).
def _fv_batch_norm(args, kwargs, out) -> int:
    x = args[0]
    weight = kwargs.get("weight", args[3] if len(args) > 3 else None)
    training = kwargs.get("training", args[5] if len(args) > 5 else False)
    if training:
        return x.numel() * (5 if weight is not None else 4)
    return x.numel() * (2 if weight is not None else 1)


def _fv_norm(args, kwargs, out) -> int:  # F.layer_norm / F.group_norm: weight is the third argument
    weight = kwargs.get("weight", args[2] if len(args) > 2 else None)
    return args[0].numel() * (5 if weight is not None else 4)


def _fv_interpolate(args, kwargs, out) -> int:
    mode = kwargs.get("mode", args[3] if len(args) > 3 else "nearest")
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        return 0
    return {"nearest": 1, "bilinear": 4}.get(mode, 0) * out.numel()


def _fv_adaptive_avg_pool2d(args, kwargs, out) -> int:
    return args[0].numel()


def _fv_grid_sample(args, kwargs, out) -> int:
    return 4 * out.numel()


FVCORE_EXTRAS: dict[Callable, tuple[str, Callable]] = {
    F.batch_norm: ("aten::batch_norm", _fv_batch_norm),
    F.layer_norm: ("aten::layer_norm", _fv_norm),
    F.group_norm: ("aten::group_norm", _fv_norm),
    F.interpolate: ("aten::upsample", _fv_interpolate),
    F.adaptive_avg_pool2d: ("aten::adaptive_avg_pool2d", _fv_adaptive_avg_pool2d),
    F.grid_sample: ("aten::grid_sampler", _fv_grid_sample),
}
