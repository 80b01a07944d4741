"""DFP16 GEMM: int16 mantissas, int32 sums over K-chunks, float32 out (Das et al. 2018).

`gemm(a, b, ea, eb)` computes (a * 2^ea) @ (b * 2^eb) for int16 mantissas a [M, K], b [K, N]:
every K-chunk is summed in int32, converted to float32 and added to a float32 accumulator, chunk
after chunk; the accumulator is then scaled by 2^(ea+eb) and the optional bias added. The exact
order, identical in the serial, AVX2 and numpy (`dfp_ref`) implementations, is documented in
csrc/dfp/serial.h:

    acc = 0.0f;  for each chunk q in K order: acc = acc + float32(int32 sum of chunk q)
    out = (acc * 2^s1) * 2^s2 + bias      (s1 + s2 = ea + eb, both powers normal floats)

so the three agree bit for bit. `impl="numpy"` runs the reference.

`quantize(x)` is the compiled twin of `DFP.from_float(x)` (per tensor, round to nearest) for
float32 tensors: the same mantissas and exponent, bit for bit, in two parallel passes.
"""
from __future__ import annotations

import numpy as np

from frugalnn import _core
from frugalnn._arrays import is_tensor, require_choice, require_int, threads_arg
from frugalnn.formats.dfp import DFP
from frugalnn.kernels import dfp_ref

IMPLS = ("native", "numpy")
INT32_MAX = dfp_ref.INT32_MAX
safe_chunk = dfp_ref.safe_chunk


def isa() -> str:
    """The ISA the native GEMM runs now: 'serial', 'avx2', 'avx512' (vpmaddwd + vpaddd on zmm) or
    'avx512 + VNNI' (vpdpwssd)."""
    from frugalnn.kernels import integer_isa

    return integer_isa("dfp")


def mantissa_bound(bits: int = 16, headroom: int = 2) -> int:
    """The largest |mantissa| that `DFP.from_float(x, bits, headroom=headroom)` can produce.

    from_float picks e = floor(log2 max|x|) + 1 - (bits - 1 - headroom), so the largest value
    scales to max|x| * 2^-e = f * 2^(bits-1-headroom) with f in [0.5, 1). Rounding to nearest
    can round that up to 2^(bits-1-headroom) itself (f * 2^(bits-1-headroom) >= 2^(bits-1-headroom)
    - 1/2), and so can stochastic rounding (floor(v + u) with v < 2^(bits-1-headroom), u < 1);
    every other value scales to less. The result is then clipped to 2^(bits-1) - 1, which only
    binds at headroom 0. Hence bound = min(2^(bits-1-headroom), 2^(bits-1) - 1), and it is reached
    (x = 1 - 2^-20 at headroom >= 1 quantizes to exactly 2^(bits-1-headroom)).
    """
    bits = require_int(bits, "bits")
    if bits not in (8, 16):
        raise ValueError(f"bits: expected 16 or 8, got {bits}")
    headroom = require_int(headroom, "headroom", 0, bits - 2)
    return min(2 ** (bits - 1 - headroom), 2 ** (bits - 1) - 1)


def max_safe_chunk(bits: int = 16, headroom: int = 2) -> int:
    """The largest K-chunk whose int32 sums provably cannot overflow for DFP operands of this format.

    With B = mantissa_bound(bits, headroom) every product lies in [-B^2, B^2], so a chunk of c
    products sums to at most c * B^2 in magnitude; int32 holds up to 2^31 - 1 (and down to -2^31),
    so c = floor((2^31 - 1) / B^2) is safe and c + 1 is not (c + 1 products of B * B exceed
    2^31 - 1). For the paper's int16 with 2 bits of headroom, B = 2^13, B^2 = 2^26 and c = 31:
    32 * 2^26 = 2^31 overflows. Other formats: headroom 1 -> 7, headroom 0 -> 2 (B = 32767),
    headroom 3 -> 127; int8 mantissas (bits=8) with headroom 2 -> 2097151.
    """
    b = mantissa_bound(bits, headroom)
    return safe_chunk(b, b)


DEFAULT_CHUNK = max_safe_chunk(16, 2)  # 31


def quantize(x, bits: int = 16, headroom: int = 2, threads: int | None = None) -> DFP:
    """DFP.from_float(x, bits, headroom=headroom) (per tensor, round to nearest even) for a float32
    array or tensor, C-contiguous, any shape: same mantissas and exponent, bit for bit (tested).
    A non-finite value raises the same ValueError as from_float, naming its index."""
    xa = _operand(x, "x", np.float32, None)
    bits = require_int(bits, "bits")
    headroom = require_int(headroom, "headroom")
    m = np.empty(xa.shape, np.int16 if bits == 16 else np.int8)
    e, bad = _core.dfp.quantize(xa, bits, headroom, m, threads_arg(threads))
    if bad >= 0:
        idx = tuple(int(i) for i in np.unravel_index(bad, xa.shape))
        raise ValueError(f"x: non-finite value {xa[idx]} at index {idx}; DFP has no inf/NaN")
    return DFP(m, np.array([e], np.int32), bits, None, headroom)


def _empty_aligned(shape: tuple[int, int]) -> np.ndarray:
    """float32 C-contiguous, 64-byte aligned: the kernel's full-row stores then never split a cache
    line (numpy gives 16-byte alignment to some allocations: 30% slower at M=288, K=32, N=25088)."""
    count = shape[0] * shape[1]
    raw = np.empty(count + 16, np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    return raw[skip:skip + count].reshape(shape)


def _operand(x, name: str, dtype, ndim: int | None) -> np.ndarray:
    """A numpy view of a numpy array or torch CPU tensor, never a copy: the dtype and C-contiguity
    must already be right (TypeError otherwise), the rank too (ValueError; None: any rank)."""
    if is_tensor(x):
        if x.device.type != "cpu":
            raise ValueError(f"{name}: expected a CPU tensor, got one on {x.device}")
        x = x.detach().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {x.shape}")
    if not x.flags.c_contiguous:
        raise TypeError(f"{name}: expected a C-contiguous array, got a strided view of shape {x.shape} "
                        "(make it contiguous first)")
    return x


def gemm(a, b, ea: int, eb: int, chunk: int | None = None, bias=None, out=None, threads: int | None = None,
         transpose_b: bool = False, *, allow_overflow: bool = False, impl: str = "native"):
    """int16 a [M, K] @ int16 b [K, N] (or b [N, K] with transpose_b) -> float32 [M, N], scaled by 2^(ea+eb).

    chunk: K values summed in int32 before each conversion to float32; None = DEFAULT_CHUNK (31,
        the largest safe chunk for DFP16 with 2 bits of headroom, see max_safe_chunk). Any
        chunk >= 1 is accepted when it is safe for the operands at hand: the kernel measures
        max|a| and max|b| and raises ValueError if min(chunk, K) * max|a| * max|b| > 2^31 - 1,
        naming the largest safe chunk. allow_overflow=True skips that check: chunk sums then
        wrap modulo 2^32 like int32 hardware (what the paper's overflow study needs to show). The
        check is one extra pass over both operands (about 15% of the GEMM when K * N is large and
        M small); a caller whose operands are bounded by construction (DFP16 mantissas with
        chunk <= max_safe_chunk of their format) loses nothing by skipping it.
    bias: float32 [N], added after the scaling (fused). out: float32 [M, N] to write into.
    a, b, bias, out: numpy arrays or torch CPU tensors, of the exact dtype and C-contiguous
        (TypeError otherwise: no silent copies). Returns `out`, or a new array (a torch tensor
        when `a` is one).
    """
    as_tensor = is_tensor(a)
    a = _operand(a, "a", np.int16, 2)
    b = _operand(b, "b", np.int16, 2)
    ea, eb = require_int(ea, "ea", -2**62, 2**62), require_int(eb, "eb", -2**62, 2**62)
    # a chunk past K is one chunk of K: capping it keeps any Python int inside the binding's int64
    chunk = DEFAULT_CHUNK if chunk is None else min(require_int(chunk, "chunk", 1), 2**62)
    transpose_b = bool(transpose_b)
    n, k_b = (b.shape[0], b.shape[1]) if transpose_b else (b.shape[1], b.shape[0])
    if k_b != a.shape[1]:
        raise ValueError(f"b: shape {b.shape} (transpose_b={transpose_b}) does not chain with a {a.shape}: "
                         f"expected K = {a.shape[1]}, got {k_b}")
    if bias is not None:
        bias = _operand(bias, "bias", np.float32, 1)
        if bias.shape != (n,):
            raise ValueError(f"bias: expected shape ({n},), got {bias.shape}")
    result = out
    if out is None:
        out_np = _empty_aligned((a.shape[0], n))
        result = out_np
        if as_tensor:
            import torch

            result = torch.from_numpy(out_np)
    else:
        out_np = _operand(out, "out", np.float32, 2)
        if out_np.shape != (a.shape[0], n):
            raise ValueError(f"out: expected shape {(a.shape[0], n)}, got {out_np.shape}")
    kernel = _core.dfp if require_choice(impl, "impl", IMPLS) == "native" else dfp_ref
    kernel.gemm(a, b, ea, eb, chunk, transpose_b, bias, out_np, threads_arg(threads), bool(allow_overflow))
    return result
