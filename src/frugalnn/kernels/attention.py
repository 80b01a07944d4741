"""One-pass fused attention over key tiles (FuseMax's 1-pass cascade, FlashAttention-2 style).

`fused_attention(q, k, v, causal=False, scale=None)` takes float32 arrays or CPU tensors shaped
(..., L, E), (..., S, E), (..., S, Ev) and returns (..., L, Ev) in kind. Leading dims are
flattened into heads; with `enable_gqa=True` the key/value head axis (-3) may be a divisor of the
query head axis (grouped-query attention, as in torch SDPA). Extra memory is the kernel's
per-thread workspace (`workspace_bytes`), independent of L and S.

`impl="native"` runs the compiled kernel (serial or AVX2, see `frugalnn.kernels.use_backend`),
`impl="numpy"` the float64 reference in `attention_ref`. Algorithm: csrc/attention/driver.h.
"""
from __future__ import annotations

import math

import numpy as np

from frugalnn import _core
from frugalnn._arrays import from_numpy, require_choice, require_float32_scalar, threads_arg, to_numpy
from frugalnn.kernels import attention_ref

IMPLS = ("native", "numpy")
BLOCK_Q = int(_core.attention.BLOCK_Q)
BLOCK_K = int(_core.attention.BLOCK_K)


def workspace_bytes(e: int, ev: int | None = None) -> int:
    """Bytes of scratch each kernel thread holds, for head dims e (and ev): no L or S in it."""
    return int(_core.attention.workspace_bytes(int(e), int(e if ev is None else ev)))


def _impl(impl: str):
    return _core.attention if require_choice(impl, "impl", IMPLS) == "native" else attention_ref


def _float32(x, name: str) -> tuple[np.ndarray, bool]:
    a, as_tensor = to_numpy(x, name)
    if a.dtype != np.float32:
        raise TypeError(f"{name}: expected float32, got {a.dtype}")
    if a.ndim < 2:
        raise ValueError(f"{name}: expected at least 2 dims (..., seq, head_dim), got shape {a.shape}")
    return np.ascontiguousarray(a), as_tensor


def fused_attention(q, k, v, *, causal: bool = False, scale: float | None = None, enable_gqa: bool = False,
                    threads: int | None = None, impl: str = "native"):
    """softmax(scale * q k^T [+ causal mask]) v without materialising the L x S score matrix."""
    qa, as_tensor = _float32(q, "q")
    ka, _ = _float32(k, "k")
    va, _ = _float32(v, "v")
    *qb, l, e = qa.shape
    *kb, s, ek = ka.shape
    *vb, sv, ev = va.shape
    if ek != e:
        raise ValueError(f"k: head dim {ek} differs from q's {e}")
    if (sv, vb) != (s, kb):
        raise ValueError(f"v: shape {va.shape} does not match k's {ka.shape} (same leading dims and length)")
    if len(kb) != len(qb):
        raise ValueError(f"k: expected {len(qb) + 2} dims like q {qa.shape}, got shape {ka.shape}")
    if l == 0 or s == 0:
        raise ValueError(f"sequence length 0: q has {l} queries, k has {s} keys (attention needs >= 1 of each)")
    if e == 0 or ev == 0:
        raise ValueError(f"head dim 0: q/k have {e}, v has {ev}")
    if 0 in qb or 0 in kb:
        raise ValueError(f"no heads: q has shape {qa.shape}, k {ka.shape} (every leading dim must be >= 1)")
    if qb[:-1] != kb[:-1] or (qb and qb[-1] != kb[-1] and not enable_gqa):
        raise ValueError(f"k: leading dims {tuple(kb)} do not match q's {tuple(qb)}"
                         + ("" if enable_gqa else " (pass enable_gqa=True for grouped-query attention)"))
    if qb and qb[-1] % kb[-1]:
        raise ValueError(f"enable_gqa: {qb[-1]} query heads are not a multiple of {kb[-1]} key/value heads")
    # Any finite float32 value, zero and negative included, as torch's SDPA allows (the kernel folds
    # it into q in float32, so 1e300 would be inf there); numpy scalars are numbers too.
    scale = 1.0 / math.sqrt(e) if scale is None else require_float32_scalar(scale, "scale")
    heads = int(np.prod(qb)) if qb else 1
    kv_heads = int(np.prod(kb)) if kb else 1
    out = np.empty((*qb, l, ev), np.float32)
    _impl(impl).fused_attention(qa.reshape(heads, l, e), ka.reshape(kv_heads, s, e), va.reshape(kv_heads, s, ev),
                                bool(causal), float(scale), out.reshape(heads, l, ev), threads_arg(threads))
    return from_numpy(out, as_tensor)


EXP_MAX = 88.3  # the AVX2 softmax exp's domain (avx2.h); both backends refuse more


def exp(x, *, impl: str = "native") -> np.ndarray:
    """float32 exp with the kernel's softmax exp (std::exp, or the AVX2 polynomial, valid for
    x <= 88.3, by backend); for tests."""
    xa = np.ascontiguousarray(np.asarray(x, dtype=np.float32).ravel())
    # The polynomial has no overflow branch (softmax only passes x - max <= 0): refuse rather than
    # return garbage above its domain; +inf included, NaN passes through.
    over = xa > EXP_MAX
    if over.any():
        raise ValueError(f"x: exp is defined here for x <= {EXP_MAX}, got {float(xa[over][0])!r} "
                         f"at flat index {int(np.flatnonzero(over)[0])}")
    y = np.empty_like(xa)
    _impl(impl).exp(xa, y)
    return y
