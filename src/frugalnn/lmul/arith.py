"""L-Mul (Luo & Sun 2024, "Addition is All You Need"): float multiplication as one integer addition.

    lmul(a, b, mantissa_bits, rounding="truncate", offset=None)         elementwise, broadcasting
    lmul_matmul(a, b, mantissa_bits, rounding="truncate", offset=None)  numpy.matmul's rules, (..., M, K) @ (..., K, N)

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
from contextlib import nullcontext

import numpy as np

from frugalnn._arrays import from_numpy, is_tensor, require_choice, require_int, threads_arg, to_numpy
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


def _torch_threads(threads: int | None):
    """The torch operators run at torch's intra-op thread count: set it to `threads` for the call
    (None leaves it alone, so torch.compile'd callers see no global state change)."""
    if threads is None:
        return nullcontext()
    from frugalnn.threads import torch_threads

    return torch_threads(threads)


def lmul(a, b, mantissa_bits: int, rounding: str = "truncate", offset: int | None = None, *,
         threads: int | None = None, impl: str = "native"):
    """Elementwise L-Mul of `a` and `b` (broadcast against each other)."""
    m, nearest, l_ = resolve_params(mantissa_bits, rounding, offset)
    threads_arg(threads)  # validated on every path, the torch one included
    if (is_tensor(a) or is_tensor(b)) and impl == "native":
        import torch

        from frugalnn.lmul import nn as _torch_ops  # noqa: F401  (registers torch.ops.frugalnn.lmul)

        ta = _float32_tensor(a if is_tensor(a) else torch.as_tensor(np.asarray(a)), "a")
        tb = _float32_tensor(b if is_tensor(b) else torch.as_tensor(np.asarray(b)), "b")
        ta, tb = torch.broadcast_tensors(ta, tb)
        with _torch_threads(threads):
            return torch.ops.frugalnn.lmul(ta, tb, m, nearest, l_)
    as_tensor = is_tensor(a) or is_tensor(b)
    x, y = np.broadcast_arrays(_float32_numpy(a, "a"), _float32_numpy(b, "b"))
    flat = _kernels.elementwise(np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(y).reshape(-1), m, nearest,
                                l_, threads=threads, impl=impl)
    return from_numpy(flat.reshape(x.shape), as_tensor).reshape(x.shape)  # from_numpy makes 0-d arrays 1-d


class _Plan:
    """numpy.matmul's shape rules for `a @ b`, reduced to one [B, M, K] @ [B, K, N] kernel call.

    1-d a is a row (its M axis is dropped from the result), 1-d b a column (N dropped), so
    1-d @ 1-d is a 0-d result; batch dimensions broadcast; any size may be 0 (K = 0 gives
    zeros, the empty sum). When b has a single batch entry the batch folds into M (one B for
    every row)."""

    def __init__(self, a_shape, b_shape):
        a_shape, b_shape = tuple(a_shape), tuple(b_shape)
        if len(a_shape) == 0 or len(b_shape) == 0:
            raise ValueError("lmul_matmul: both operands need at least one dimension (use lmul for scalars)")
        self.row, self.col = len(a_shape) == 1, len(b_shape) == 1
        a2 = (1,) + a_shape if self.row else a_shape
        b2 = b_shape + (1,) if self.col else b_shape
        (self.m, self.k), (k2, self.n) = a2[-2:], b2[-2:]
        if self.k != k2:
            raise ValueError(f"b: shape {b_shape} does not chain with a {a_shape} (K = {self.k} vs {k2})")
        try:
            self.batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
        except ValueError:
            raise ValueError(f"a {a_shape} and b {b_shape}: batch dimensions do not broadcast") from None
        self.a2, self.b2 = a2, b2
        self.fold = math.prod(b2[:-2]) == 1
        entries = math.prod(self.batch)
        # Explicit sizes, never -1: with a zero extent, -1 is ambiguous and reshape refuses it.
        self.a3 = (1, entries * self.m, self.k) if self.fold else (entries, self.m, self.k)
        self.b3 = (1, self.k, self.n) if self.fold else (entries, self.k, self.n)
        self.out = self.batch + (() if self.row else (self.m,)) + (() if self.col else (self.n,))


def lmul_matmul(a, b, mantissa_bits: int, rounding: str = "truncate", offset: int | None = None, *,
                threads: int | None = None, impl: str = "native"):
    """`a @ b` with every product an L-Mul and float32 accumulation (numpy.matmul's shape rules:
    1-d operands, broadcast batch dimensions, zero sizes; K = 0 gives zeros)."""
    m_bits, nearest, l_ = resolve_params(mantissa_bits, rounding, offset)
    threads_arg(threads)  # validated on every path, the torch one included
    if (is_tensor(a) or is_tensor(b)) and impl == "native":
        import torch

        ta = _float32_tensor(a if is_tensor(a) else torch.as_tensor(np.asarray(a)), "a")
        tb = _float32_tensor(b if is_tensor(b) else torch.as_tensor(np.asarray(b)), "b")
        with _torch_threads(threads):
            return _matmul_torch(ta, tb, m_bits, nearest, l_)
    as_tensor = is_tensor(a) or is_tensor(b)
    x, y = _float32_numpy(a, "a"), _float32_numpy(b, "b")
    plan = _Plan(x.shape, y.shape)
    x = x.reshape(plan.a2)
    y = y.reshape(plan.b2)
    x3 = np.broadcast_to(x, plan.batch + (plan.m, plan.k)).reshape(plan.a3)
    y3 = y.reshape(plan.b3) if plan.fold else np.broadcast_to(y, plan.batch + (plan.k, plan.n)).reshape(plan.b3)
    yt = np.swapaxes(y3, 1, 2)
    transpose_b = yt.flags.c_contiguous and not y3.flags.c_contiguous  # B^T views (weights, K^T) need no copy
    out = _kernels.matmul(np.ascontiguousarray(x3), np.ascontiguousarray(yt if transpose_b else y3), m_bits, nearest,
                          l_, transpose_b=transpose_b, threads=threads, impl=impl)
    return from_numpy(out.reshape(plan.out), as_tensor).reshape(plan.out)  # from_numpy makes 0-d arrays 1-d


def _matmul_torch(a, b, m_bits: int, nearest: bool, l_: int):
    import torch

    from frugalnn.lmul import nn as _torch_ops  # noqa: F401  (registers torch.ops.frugalnn.lmul_matmul)

    plan = _Plan(a.shape, b.shape)
    a = a.reshape(plan.a2)
    b = b.reshape(plan.b2)
    a3 = a.expand(plan.batch + (plan.m, plan.k)).reshape(plan.a3)
    b3 = b.reshape(plan.b3) if plan.fold else b.expand(plan.batch + (plan.k, plan.n)).reshape(plan.b3)
    bt = b3.transpose(1, 2)
    transpose_b = bt.is_contiguous() and not b3.is_contiguous()
    out = torch.ops.frugalnn.lmul_matmul(a3.contiguous(), bt if transpose_b else b3.contiguous(), m_bits, nearest,
                                         l_, transpose_b)
    return out.reshape(plan.out)
