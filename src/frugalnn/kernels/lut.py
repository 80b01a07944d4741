"""T-MAC lookup-table kernels: allocating wrappers over the compiled core (`impl="native"`) and the
bit-identical numpy reference (`impl="numpy"`, `lut_ref`). Layout: csrc/lut/layout.h.

These are the raw kernels; `frugalnn.tmac` (LUTWeight, matmul) is the user-facing API.

Limits and domain (csrc/lut/layout.h): group_size <= 2^26 (MAX_GROUP; the int32 table sum of one
group); any longer group than int32 row sums allow (8-bit from G of ~265k, ternary from ~22.5M)
is summed in int64, exactly. Activations with |x| >= 2^125, inf and NaN bypass the tables and are
added back as a dense float32 matmul would (a NaN makes its output column NaN). Below that the
result is finite wherever each group's terms ws * sum(level x) and zt * sum(x) are.
"""
from __future__ import annotations

import numpy as np

from frugalnn import _core
from frugalnn._arrays import require_choice, require_int, threads_arg
from frugalnn.kernels import lut_ref

IMPLS = ("native", "numpy")
UNIT_ROWS = lut_ref.UNIT_ROWS
MAX_GROUP = int(_core.lut.MAX_GROUP)
layout_sizes = lut_ref.layout_sizes


def _impl(impl: str):
    return _core.lut if require_choice(impl, "impl", IMPLS) == "native" else lut_ref


def _array(a, name: str, dtype, ndim: int) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {a.shape}")
    return np.ascontiguousarray(a)


def transform(codes: np.ndarray, bits: int, group_size: int, *, threads: int | None = None,
              impl: str = "native") -> np.ndarray:
    """uint8 codes [M, K] in [0, 2^bits) -> the kernel's bit-plane layout (uint8, flat)."""
    bits = require_int(bits, "bits", 1, 8)
    group_size = require_int(group_size, "group_size", 1)
    codes = _array(codes, "codes", np.uint8, 2)
    packed = np.empty(layout_sizes(*codes.shape, group_size, bits)[2], np.uint8)
    _impl(impl).transform(codes, bits, group_size, packed, threads_arg(threads))
    return packed


def untransform(packed: np.ndarray, bits: int, group_size: int, m: int, k: int, *, threads: int | None = None,
                impl: str = "native") -> np.ndarray:
    bits = require_int(bits, "bits", 1, 8)
    m, k, group_size = require_int(m, "m", 0), require_int(k, "k", 1), require_int(group_size, "group_size", 1)
    packed = _array(packed, "packed", np.uint8, 1)
    _require_packed(packed, m, k, group_size, bits)  # before allocating [m, k] from the caller's integers
    codes = np.empty((m, k), np.uint8)
    _impl(impl).untransform(packed, bits, group_size, codes, threads_arg(threads))
    return codes


def _require_packed(packed: np.ndarray, m: int, k: int, group_size: int, bits: int) -> None:
    nbytes = layout_sizes(m, k, group_size, bits)[2]
    if packed.shape != (nbytes,):
        raise ValueError(f"packed: expected {nbytes} bytes for M={m}, K={k}, group_size={group_size}, bits={bits}, "
                         f"got shape {packed.shape}")


def build_tables(x: np.ndarray, group_size: int, *, impl: str = "native"):
    """One activation column x [K] -> (int8 tables [table bytes], table scales [groups], isum [groups])."""
    x = _array(x, "x", np.float32, 1)
    _, groups, _, tb = layout_sizes(0, x.shape[0], require_int(group_size, "group_size", 1), 1)
    tables, ts, isum = np.empty(tb, np.int8), np.empty(groups, np.float32), np.empty(groups, np.int32)
    _impl(impl).build_tables(x, group_size, tables, ts, isum)
    return tables, ts, isum


def matmul(x: np.ndarray, packed: np.ndarray, ws: np.ndarray, zt: np.ndarray, m: int, bits: int, group_size: int,
           has_zero: bool, *, threads: int | None = None, units: int = 1, cols: int = 1, col_block: int = 32,
           prefetch: int = 0, impl: str = "native") -> np.ndarray:
    """x [N, K] float32 times the transformed weight [M, K] -> out [N, M] float32."""
    x = _array(x, "x", np.float32, 2)
    m, bits, group_size = require_int(m, "m", 0), require_int(bits, "bits", 1, 8), require_int(group_size, "group_size", 1)
    packed = _array(packed, "packed", np.uint8, 1)
    _require_packed(packed, m, x.shape[1], group_size, bits)  # before allocating [N, m]
    out = np.empty((x.shape[0], m), np.float32)
    _impl(impl).matmul(x, packed, _array(ws, "ws", np.float32, 3),
                       _array(zt, "zt", np.float32, 3), m, bits, group_size, bool(has_zero), out, threads_arg(threads),
                       require_int(units, "units", 1, 4), require_int(cols, "cols", 1, 4),
                       require_int(col_block, "col_block", 1), require_int(prefetch, "prefetch", 0, 1 << 20))
    return out


KQ_FORMATS = lut_ref.KQ_FORMATS  # scale byte formats of two-level weights: name -> kernel code


def matmul_kq(x: np.ndarray, packed: np.ndarray, sc: np.ndarray, mn: np.ndarray, d: np.ndarray, dmin: np.ndarray,
              m: int, bits: int, group_size: int, fmt: str, sub: int, zero: int, has_min: bool, *,
              threads: int | None = None, units: int = 1, cols: int = 1, col_block: int = 32, prefetch: int = 0,
              impl: str = "native") -> np.ndarray:
    """x [N, K] float32 times a two-level (K-quant) weight [M, K] -> out [N, M] (csrc/lut/layout.h).
    sc / mn: uint8 [units, groups, group_size/sub, 32] (mn = sc when there are no separate mins; 1-d
    placeholders for fmt "one", which has no sub-scale bytes);
    d / dmin: fp16 bit patterns, uint16 [units, groups, 32]."""
    x = _array(x, "x", np.float32, 2)
    m, bits, group_size = require_int(m, "m", 0), require_int(bits, "bits", 1, 8), require_int(group_size, "group_size", 1)
    code = KQ_FORMATS[require_choice(fmt, "fmt", tuple(KQ_FORMATS))]
    packed = _array(packed, "packed", np.uint8, 1)
    _require_packed(packed, m, x.shape[1], group_size, bits)
    out = np.empty((x.shape[0], m), np.float32)
    nd = 1 if fmt == "one" else 4
    _impl(impl).matmul_kq(x, packed, _array(sc, "sc", np.uint8, nd), _array(mn, "mn", np.uint8, nd),
                          _array(d, "d", np.uint16, 3), _array(dmin, "dmin", np.uint16, 3), m, bits, group_size, code,
                          require_int(sub, "sub", 1), require_int(zero, "zero", 0), bool(has_min), out,
                          threads_arg(threads), require_int(units, "units", 1, 4), require_int(cols, "cols", 1, 4),
                          require_int(col_block, "col_block", 1), require_int(prefetch, "prefetch", 0, 1 << 20))
    return out
