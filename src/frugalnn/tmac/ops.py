"""`matmul(x, w, threads=None)`: x [..., K] times a LUTWeight [M, K] -> [..., M] (x @ w.T).

x may be numpy or a torch CPU tensor (the answer comes back in kind, float32). NaN/inf in x
propagate exactly as in a dense float32 matmul (csrc/lut/driver.h).

`gemv_plan(w, threads)` resolves everything a one-token call needs once (threads, tuned tiles):
LUTLinear's one-token path and the Llama's compiled decoder (frugalnn.llm.fast) both run it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalnn import _core
from frugalnn._arrays import from_numpy, require_floating, to_numpy
from frugalnn.threads import resolve_threads
from frugalnn.tmac import tune
from frugalnn.tmac.weight import LUTWeight


def tile_config(w: LUTWeight, n: int, threads: int) -> dict:
    """Tile configuration for this weight and batch size, remembered on the weight (tuned once)."""
    from frugalnn.kernels import backend

    key = (n == 1, threads, backend())
    cache = w.__dict__.setdefault("_configs", {})
    cfg = cache.get(key)
    if cfg is None:
        cfg = cache[key] = tune.config_for(w, n, threads)
    return cfg


def matmul_numpy(x: np.ndarray, w: LUTWeight, threads: int, config: dict | None = None) -> np.ndarray:
    """x [N, K] float32 (C-contiguous) -> [N, M]; `threads` already resolved (>= 1).

    Calls the compiled kernel directly: it validates dtypes, shapes and contiguity itself.
    """
    m, _ = w.shape
    if w.kq is not None:
        return _matmul_kq(x, w, threads)
    cfg = config or tile_config(w, x.shape[0], threads)
    out = np.empty((x.shape[0], m), np.float32)
    _core.lut.matmul(x, w.packed, w.ws, w.ws if w.zt is None else w.zt, m, w.bits, w.group_size, w.zt is not None,
                     out, threads, cfg["units"], cfg["cols"], cfg["col_block"], cfg.get("prefetch", 0))
    return out


def kq_args(w: LUTWeight) -> tuple:
    """The weight arguments of `_core.lut.matmul_kq` for a two-level weight (csrc/lut/bind.cpp)."""
    from frugalnn.kernels.lut import KQ_FORMATS

    kq = w.kq
    return (w.packed, kq.sc, kq.sc if kq.mn is None else kq.mn, kq.d, kq.d if kq.dmin is None else kq.dmin,
            w.shape[0], w.bits, w.group_size, KQ_FORMATS[kq.fmt], kq.sub, kq.zero, kq.has_min)


def _matmul_kq(x: np.ndarray, w: LUTWeight, threads: int) -> np.ndarray:
    # one unit per block; up to 4 columns share each weight load (no tuner for this path yet)
    out = np.empty((x.shape[0], w.shape[0]), np.float32)
    _core.lut.matmul_kq(x, *kq_args(w), out, threads, 1, min(max(x.shape[0], 1), 4), 32, 0)
    return out


@dataclass(frozen=True)
class GemvPlan:
    """One weight's one-token kernel call, resolved: `_core.lut.matmul(x, *weight_args, out, *tile_args)`."""

    packed: np.ndarray
    ws: np.ndarray
    zt: np.ndarray  # ws again when the weight has no zero term (the kernel then ignores it)
    m: int
    k: int
    bits: int
    group_size: int
    has_zero: bool
    threads: int
    units: int
    cols: int
    col_block: int
    prefetch: int

    @property
    def weight_args(self) -> tuple:
        return (self.packed, self.ws, self.zt, self.m, self.bits, self.group_size, self.has_zero)

    @property
    def tile_args(self) -> tuple:
        return (self.threads, self.units, self.cols, self.col_block, self.prefetch)


def gemv_plan(w: LUTWeight, threads: int | None = None) -> GemvPlan:
    """The one-token call of `w` at `threads` (None: all cores), tiles tuned once for this shape."""
    if not isinstance(w, LUTWeight):
        raise TypeError(f"w: expected a LUTWeight, got {type(w).__name__}")
    if w.kq is not None:
        raise ValueError("w: a two-level (K-quant) LUTWeight has no f32-scale plan; use w.flat_scales() for layers "
                         "that need one, or tmac.matmul / w.gemv_fn()")
    t = resolve_threads(threads)
    cfg = tile_config(w, 1, t)
    m, k = w.shape
    return GemvPlan(w.packed, w.ws, w.ws if w.zt is None else w.zt, int(m), int(k), int(w.bits), int(w.group_size),
                    w.zt is not None, t, cfg["units"], cfg["cols"], cfg["col_block"], cfg.get("prefetch", 0))


def gemv_fn(w: LUTWeight, threads: int | None = None):
    """A lean one-token function for `w`: fn(x) with x float32 C-contiguous [K] or [1, K] (numpy or torch
    CPU) -> [1, M] of the same kind. Threads and tile configuration are resolved once, here; the call
    itself only allocates the output and enters the kernel (which still validates x)."""
    if isinstance(w, LUTWeight) and w.kq is not None:
        t = resolve_threads(threads)
        m, k = w.shape
        kargs = kq_args(w)
        kq_kernel = _core.lut.matmul_kq

        def fn_kq(x):
            tensor = not isinstance(x, np.ndarray)
            a = x.detach().numpy() if tensor else x
            out = np.empty((1, m), np.float32)
            kq_kernel(a.reshape(1, k), *kargs, out, t, 1, 1, 32, 0)
            return from_numpy(out, True) if tensor else out

        return fn_kq
    plan = gemv_plan(w, threads)
    m, k = plan.m, plan.k
    args, tail = plan.weight_args, plan.tile_args
    kernel = _core.lut.matmul

    def fn(x):
        tensor = not isinstance(x, np.ndarray)
        a = x.detach().numpy() if tensor else x
        out = np.empty((1, m), np.float32)
        kernel(a.reshape(1, k), *args, out, *tail)
        return from_numpy(out, True) if tensor else out

    return fn


def matmul(x, w: LUTWeight, threads: int | None = None):
    """x [..., K] @ w.T -> [..., M] with the T-MAC lookup-table kernel."""
    if not isinstance(w, LUTWeight):
        raise TypeError(f"w: expected a LUTWeight, got {type(w).__name__}")
    a, as_tensor = to_numpy(x, "x")
    require_floating(a, "x")
    m, k = w.shape
    if a.ndim < 1 or a.shape[-1] != k:
        raise ValueError(f"x: expected shape [..., {k}] to multiply a {m}x{k} weight, got {a.shape}")
    lead = a.shape[:-1]
    a2 = np.ascontiguousarray(a.reshape(-1, k), np.float32)
    out = matmul_numpy(a2, w, resolve_threads(threads))
    return from_numpy(out.reshape(*lead, m), as_tensor)
