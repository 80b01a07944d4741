"""The pieces of the compiled one-token Llama decoder (csrc/llama/) as standalone kernels:
allocating wrappers over `_core.llama` (`impl="native"`: serial or AVX2, see
`frugalnn.kernels.use_backend`) and the numpy reference (`impl="numpy"`, `llama_ref`).

The decoder itself is `frugalnn.llm.fast`; these exist so each piece is tested on its own
against a reference, on odd shapes and edge values, under both backends.
"""
from __future__ import annotations

import numpy as np

from frugalnn import _core
from frugalnn._arrays import float32_array, require_choice, require_float32_scalar, require_int, threads_arg
from frugalnn.kernels import llama_ref

IMPLS = ("native", "numpy")


def _impl(impl: str):
    return _core.llama if require_choice(impl, "impl", IMPLS) == "native" else llama_ref


def _same(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{b_name}: expected shape {a.shape} (as {a_name}), got {b.shape}")


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float = 1e-5, *, impl: str = "native") -> np.ndarray:
    """(x * rsqrt(mean(x^2) + eps)) * w for x, w [n] float32."""
    x, w = float32_array(x, "x", 1), float32_array(w, "w", 1)
    _same(x, w, "x", "w")
    if x.shape[0] == 0:
        raise ValueError("x: expected at least one element")
    eps = require_float32_scalar(eps, "eps")
    if not eps >= 0:
        raise ValueError(f"eps: expected a finite number >= 0, got {eps}")
    out = np.empty_like(x)
    _impl(impl).rms_norm(x, w, eps, out)
    return out


def rope(x: np.ndarray, cs: np.ndarray, rope_dim: int | None = None, *, impl: str = "native") -> np.ndarray:
    """Rotate adjacent pairs of x [heads, D] by cs [rope_dim/2, 2] = (cos, sin); returns a new array."""
    x = float32_array(x, "x", 2)
    cs = float32_array(cs, "cs", 2)
    rope_dim = 2 * cs.shape[0] if rope_dim is None else require_int(rope_dim, "rope_dim", 0, x.shape[1])
    if rope_dim % 2 or cs.shape != (rope_dim // 2, 2):
        raise ValueError(f"cs: expected shape ({rope_dim // 2}, 2) for an even rope_dim, got {cs.shape} "
                         f"(rope_dim {rope_dim})")
    out = x.copy()
    _impl(impl).rope(out, rope_dim, cs)
    return out


def attend(q: np.ndarray, keys: np.ndarray, values: np.ndarray, scale: float | None = None, *,
           impl: str = "native") -> np.ndarray:
    """softmax(scale q keys^T) values for q [G, D], keys/values [S, D] (default scale 1/sqrt(D))."""
    q, keys, values = float32_array(q, "q", 2), float32_array(keys, "keys", 2), float32_array(values, "values", 2)
    if keys.shape[1] != q.shape[1]:
        raise ValueError(f"keys: expected shape [S, {q.shape[1]}], got {keys.shape}")
    _same(keys, values, "keys", "values")
    if keys.shape[0] == 0:
        raise ValueError("keys: expected at least one position")
    if q.shape[1] == 0:
        raise ValueError(f"q: head dim 0 (shape {q.shape}); attention needs >= 1")
    # any finite float32 value, as fused_attention
    scale = 1.0 / float(np.sqrt(np.float32(q.shape[1]))) if scale is None else require_float32_scalar(scale, "scale")
    out = np.empty_like(q)
    _impl(impl).attend(q, keys, values, scale, out)
    return out


def silu_mul(gate: np.ndarray, up: np.ndarray, *, impl: str = "native") -> np.ndarray:
    """silu(gate) * up for [n] float32."""
    gate, up = float32_array(gate, "gate", 1), float32_array(up, "up", 1)
    _same(gate, up, "gate", "up")
    out = np.empty_like(gate)
    _impl(impl).silu_mul(gate, up, out)
    return out


def gemv(w: np.ndarray, x: np.ndarray, *, threads: int | None = None, impl: str = "native") -> np.ndarray:
    """w [M, K] @ x [K] in float32 (the decoder's dense linear layers)."""
    w, x = float32_array(w, "w", 2), float32_array(x, "x", 1)
    if x.shape[0] != w.shape[1]:
        raise ValueError(f"x: expected shape ({w.shape[1]},) to multiply a {w.shape} weight, got {x.shape}")
    out = np.empty(w.shape[0], np.float32)
    _impl(impl).gemv(w, x, out, threads_arg(threads))
    return out
