"""`matmul`: a DFP16 matrix product on DFP operands or on float arrays quantized on the way in.

    y = matmul(a, b)                     # float arrays: each quantized to DFP16 (per tensor, 2 bits
                                         # of headroom, round to nearest), then the int16 GEMM
    y = matmul(DFP.from_float(a), wq)    # already quantized operands (per-tensor exponent)

The product runs on frugalnn.kernels.dfp.gemm: int32 sums over K-chunks, float32 accumulation
of the chunks, one scaling by 2^(ea+eb). numpy in, numpy out; a torch tensor among the inputs
gives a torch tensor.
"""
from __future__ import annotations

import numpy as np

from frugalnn._arrays import from_numpy, is_tensor, to_numpy
from frugalnn.formats.dfp import DFP
from frugalnn.kernels import dfp as kernel

BITS = 16  # float inputs are quantized to int16 mantissas, the paper's format


def _as_dfp(x, name: str) -> DFP:
    if isinstance(x, DFP):
        if x.block_size is not None:
            raise ValueError(f"{name}: expected a per-tensor DFP (block_size=None), got blocks of {x.block_size}")
        return x
    arr, _ = to_numpy(x, name)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name}: expected a DFP or a floating-point array, got dtype {arr.dtype}")
    try:
        if arr.dtype == np.float32 and arr.flags.c_contiguous:
            return kernel.quantize(arr, bits=BITS)  # DFP.from_float's bits, compiled and parallel
        return DFP.from_float(arr, bits=BITS)
    except ValueError as e:  # a non-finite value: the message names the index, and here the operand
        raise ValueError(str(e).replace("x:", f"{name}:", 1)) from None


def _mantissa(q: DFP, name: str) -> tuple[np.ndarray, int]:
    if q.mantissa.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d matrix, got shape {q.mantissa.shape}")
    m = np.ascontiguousarray(q.mantissa, dtype=np.int16)  # int8 mantissas widen exactly
    return m, int(q.exponent[0]) if q.exponent.size else 0


def default_chunk(a: DFP, b: DFP) -> int:
    """The largest chunk that cannot overflow int32 for these two formats (31 for DFP16, headroom 2)."""
    return kernel.safe_chunk(kernel.mantissa_bound(a.bits, a.headroom), kernel.mantissa_bound(b.bits, b.headroom))


def matmul(a, b, chunk: int | None = None, threads: int | None = None):
    """a [M, K] @ b [K, N] in DFP16 -> float32 [M, N].

    a, b: `formats.DFP` (per-tensor exponent, int16 or int8 mantissas) or float arrays (numpy or
    torch CPU), which are quantized with DFP.from_float(x, bits=16). chunk: K values per int32
    sum (None: the largest safe one for the operands' formats, see `default_chunk`).
    """
    as_tensor = any(is_tensor(x) for x in (a, b))
    qa, qb = _as_dfp(a, "a"), _as_dfp(b, "b")
    ma, ea = _mantissa(qa, "a")
    mb, eb = _mantissa(qb, "b")
    if chunk is None:
        chunk = default_chunk(qa, qb)
    y = kernel.gemm(ma, mb, ea, eb, chunk=chunk, threads=threads)
    return from_numpy(y, as_tensor)
