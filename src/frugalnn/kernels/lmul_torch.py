"""L-Mul as torch operators: `torch.ops.frugalnn.lmul` and `torch.ops.frugalnn.lmul_matmul`.

Registered with `torch.library.custom_op` (+ `register_fake`, so they trace under torch.compile)
and with a FLOP formula for `torch.utils.flop_counter` (2 FLOPs per multiply-accumulate, the
convention of the counter's own matmul formulas), so cost profilers count converted models.
Both take canonical shapes; `frugalnn.arith.lmul` does broadcasting and matmul's shape rules
with ordinary torch ops around them, so autograd handles those.

Gradient (documented choice): the exact product's. For y = lmul(a, b) the backward is
da = g * b, db = g * a; for C = lmul_matmul(A, B) it is dA = g @ B^T, dB = A^T @ g, computed
in float32 by torch. This is the straight-through estimator for the approximation: L-Mul's
own derivative is piecewise constant in the mantissas (zero almost everywhere after the
operands are rounded to m bits), which would stop training.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import register_flop_formula

from frugalnn.kernels import lmul as _kernels

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
