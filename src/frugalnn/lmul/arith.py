"""L-Mul (Luo & Sun 2024, "Addition is All You Need"): float multiplication as one integer addition.

    lmul(a, b, mantissa_bits, rounding="truncate", offset=None)         elementwise, broadcasting
    lmul_matmul(a, b, mantissa_bits, rounding="truncate", offset=None)  matmul semantics, (..., M, K) @ (..., K, N)

Each operand keeps `mantissa_bits` (m) mantissa bits (truncated, or rounded to nearest even), then
the product's bit pattern is bits|a| + bits|b| - OFFSET with OFFSET = (127 << 23) - (1 << (23 - l)):
the exponents add, the mantissas add, 2^-l stands in for the dropped mantissa product, and a
mantissa carry flows into the exponent. `offset=None` uses the paper's l(m) (m for m <= 3, 3 for
m = 4, 4 above); an explicit l in 0..23 overrides it. In lmul_matmul only the products are L-Mul;
they are summed in float32 in k order (csrc/lmul/serial.h documents the exact order).

Special values (chosen here; the paper leaves them undefined):
  * zero and subnormal operands count as signed zero (denormals are zero); zero * finite = signed zero;
  * NaN in, or 0 * inf -> NaN (always the canonical quiet NaN 0x7FC00000);
  * inf * nonzero -> signed inf; a product whose exponent overflows -> signed inf (as IEEE multiplication);
  * a product whose exponent underflows -> signed zero (results are never subnormal).

Inputs: numpy arrays or torch CPU tensors of any floating dtype (converted to float32, the
container L-Mul is defined on; float64 is rounded to float32 first). Results are float32, in the
caller's container. torch tensors go through `torch.ops.frugalnn.*` (autograd with the exact
product's gradient, torch.compile, FLOP counting: see frugalnn.lmul.nn).
"""
from __future__ import annotations

import math

import numpy as np

from frugalnn._arrays import from_numpy, is_tensor, require_choice, require_int, to_numpy
from frugalnn.kernels import lmul as _kernels
from frugalnn.kernels.lmul_ref import paper_offset

ROUNDINGS = ("truncate", "nearest")

__all__ = ["ROUNDINGS", "lmul", "lmul_matmul", "paper_offset", "resolve_params"]


def resolve_params(mantissa_bits, rounding="truncate", offset=None) -> tuple[int, bool, int]:
    """Validated (m, nearest, l) for the kernels."""
    m = require_int(mantissa_bits, "mantissa_bits", 1, 23)
    nearest = require_choice(rounding, "rounding", ROUNDINGS) == "nearest"
    l_ = paper_offset(m) if offset is None else require_int(offset, "offset", 0, 23)
    return m, nearest, l_


def _float32_numpy(x, name: str) -> np.ndarray:
    a, _ = to_numpy(x, name)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name}: expected a floating-point array, got dtype {a.dtype}")
    return a.astype(np.float32, copy=False)


def _float32_tensor(t, name: str):
    import torch

    if not t.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")
    if t.device.type != "cpu":
        raise ValueError(f"{name}: expected a CPU tensor, got one on {t.device}")
    return t.to(torch.float32)


def lmul(a, b, mantissa_bits: int, rounding: str = "truncate", offset: int | None = None, *,
         threads: int | None = None, impl: str = "native"):
    """Elementwise L-Mul of `a` and `b` (broadcast against each other)."""
    m, nearest, l_ = resolve_params(mantissa_bits, rounding, offset)
    if (is_tensor(a) or is_tensor(b)) and impl == "native":
        import torch

        from frugalnn.lmul import nn as _torch_ops  # noqa: F401  (registers torch.ops.frugalnn.lmul)

        ta = _float32_tensor(a if is_tensor(a) else torch.as_tensor(np.asarray(a)), "a")
        tb = _float32_tensor(b if is_tensor(b) else torch.as_tensor(np.asarray(b)), "b")
        ta, tb = torch.broadcast_tensors(ta, tb)
        return torch.ops.frugalnn.lmul(ta, tb, m, nearest, l_)
    as_tensor = is_tensor(a) or is_tensor(b)
    x, y = np.broadcast_arrays(_float32_numpy(a, "a"), _float32_numpy(b, "b"))
    flat = _kernels.elementwise(np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(y).reshape(-1), m, nearest,
                                l_, threads=threads, impl=impl)
    return from_numpy(flat.reshape(x.shape), as_tensor)


def _matmul_shapes(a_shape, b_shape):
    """(batch, M, K, N) under matmul's rules; a and b already at least 2-d."""
    (m, k), (k2, n) = a_shape[-2:], b_shape[-2:]
    if k != k2:
        raise ValueError(f"b: shape {tuple(b_shape)} does not chain with a {tuple(a_shape)} (K = {k} vs {k2})")
    try:
        batch = tuple(np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))
    except ValueError:
        raise ValueError(f"a {tuple(a_shape)} and b {tuple(b_shape)}: batch dimensions do not broadcast") from None
    return batch, m, k, n


def _promote(ndim_a: int, ndim_b: int) -> None:
    if ndim_a == 0 or ndim_b == 0:
        raise ValueError("lmul_matmul: both operands need at least one dimension (use lmul for scalars)")


def lmul_matmul(a, b, mantissa_bits: int, rounding: str = "truncate", offset: int | None = None, *,
                threads: int | None = None, impl: str = "native"):
    """`a @ b` with every product an L-Mul and float32 accumulation (matmul's shape rules, batched)."""
    m_bits, nearest, l_ = resolve_params(mantissa_bits, rounding, offset)
    if (is_tensor(a) or is_tensor(b)) and impl == "native":
        import torch

        ta = _float32_tensor(a if is_tensor(a) else torch.as_tensor(np.asarray(a)), "a")
        tb = _float32_tensor(b if is_tensor(b) else torch.as_tensor(np.asarray(b)), "b")
        return _matmul_torch(ta, tb, m_bits, nearest, l_)
    as_tensor = is_tensor(a) or is_tensor(b)
    x, y = _float32_numpy(a, "a"), _float32_numpy(b, "b")
    _promote(x.ndim, y.ndim)
    squeeze_m, squeeze_n = x.ndim == 1, y.ndim == 1
    x = x[None, :] if squeeze_m else x
    y = y[:, None] if squeeze_n else y
    batch, m, k, n = _matmul_shapes(x.shape, y.shape)
    if math.prod(y.shape[:-2]) == 1:  # one B for every batch entry: fold the batch into M
        x3 = np.broadcast_to(x, batch + (m, k)).reshape(1, -1, k)
        y3 = y.reshape(1, k, n)
    else:
        x3 = np.broadcast_to(x, batch + (m, k)).reshape(-1, m, k)
        y3 = np.broadcast_to(y, batch + (k, n)).reshape(-1, k, n)
    yt = np.swapaxes(y3, 1, 2)
    transpose_b = yt.flags.c_contiguous and not y3.flags.c_contiguous  # B^T views (weights, K^T) need no copy
    out = _kernels.matmul(np.ascontiguousarray(x3), np.ascontiguousarray(yt if transpose_b else y3), m_bits, nearest,
                          l_, transpose_b=transpose_b, threads=threads, impl=impl)
    out = out.reshape(batch + (m, n))
    if squeeze_m:
        out = out[..., 0, :]
    if squeeze_n:
        out = out[..., 0]
    return from_numpy(np.ascontiguousarray(out), as_tensor)


def _matmul_torch(a, b, m_bits: int, nearest: bool, l_: int):
    import torch

    from frugalnn.lmul import nn as _torch_ops  # noqa: F401  (registers torch.ops.frugalnn.lmul_matmul)

    _promote(a.dim(), b.dim())
    squeeze_m, squeeze_n = a.dim() == 1, b.dim() == 1
    a = a.unsqueeze(0) if squeeze_m else a
    b = b.unsqueeze(-1) if squeeze_n else b
    batch, m, k, n = _matmul_shapes(a.shape, b.shape)
    if math.prod(b.shape[:-2]) == 1:
        a3 = a.expand(batch + (m, k)).reshape(1, -1, k)
        b3 = b.reshape(1, k, n)
    else:
        a3 = a.expand(batch + (m, k)).reshape(-1, m, k)
        b3 = b.expand(batch + (k, n)).reshape(-1, k, n)
    bt = b3.transpose(1, 2)
    transpose_b = bt.is_contiguous() and not b3.is_contiguous()
    out = torch.ops.frugalnn.lmul_matmul(a3.contiguous(), bt if transpose_b else b3.contiguous(), m_bits, nearest,
                                         l_, transpose_b)
    out = out.reshape(batch + (m, n))
    if squeeze_m:
        out = out.squeeze(-2)
    if squeeze_n:
        out = out.squeeze(-1)
    return out
