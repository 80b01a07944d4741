"""Weight quantizers for llama.cpp's block types (Q2_K..Q6_K, Q4_0/Q4_1/Q5_0/Q5_1/Q8_0) and the LUT
kernel's own group formats, fitted for least (weighted) squared error rather than by min/max rounding.

    g = fit(w, "Q3_K")                       # w [M, K] float32; optional importance [K] or [M, K]
    codes = round_codes(w, g)                # nearest code on the grid
    blocks = encode(g, codes)                # standard GGUF bytes, what llama.cpp and gguf read
    blocks = quantize(w, "Q4_K")             # the three at once
    lw = to_lut(w, "Q4_0")                   # into the LUT kernel via LUTWeight.from_gguf

A Grid is the effective grid w ~= code * scale + offset per sub-block of `block` elements, plus the
stored fields that produce it. GPTQ (which re-chooses codes column by column) fits one super-block at
a time and joins the pieces with concat(). Contract (tests/tmac/test_quantizers.py):
gguf.quants.dequantize(encode(g, c)) == c * g.scale + g.offset, expanded per element, exactly for the
types whose decoder computes it in that form (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) and within float32 rounding
of the code times the scale for the others (their decoders compute (c - z) * scale).

How the fit works: _search.py (per sub-block candidate scales + least squares, llama.cpp's
make_qkx2_quants / make_qx_quants idea) and _kquant.py (integer sub-block scales under fp16 super-block
scales, refined by alternating least squares).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from frugalnn._arrays import max_threads, require_floating, require_int, to_numpy
from frugalnn.tmac.quantizers import _search
from frugalnn.tmac.quantizers._formats import QTYPES, SPECS, encode_blocks, expand, scale_offset, spec, to_fp16
from frugalnn.tmac.quantizers._kquant import second_level

CHUNK_ELEMENTS = 1 << 20  # rows fitted together: bounds the temporaries (~10 float32 copies of a chunk)


@dataclass(eq=False)
class Grid:
    qtype: str  # "Q2_K", ..., "Q8_0"
    bits: int  # code bits: codes in [0, 2^bits)
    block: int  # elements sharing one (scale, offset)
    scale: np.ndarray  # float32 [M, K/block]; w ~= q * scale + offset
    offset: np.ndarray  # float32 [M, K/block]
    fields: dict  # stored fields encode() writes: d (and m / dmin, sc, mn), [M, n] arrays

    @property
    def shape(self) -> tuple[int, int]:
        return self.scale.shape[0], self.scale.shape[1] * self.block

    @property
    def bits_per_weight(self) -> float:
        return spec(self.qtype).bits_per_weight

    def column(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scale, offset) float32 [M] of column k (for column-at-a-time rounding, as GPTQ does)."""
        b = k // self.block
        return self.scale[:, b], self.offset[:, b]

    def round_column(self, w_col: np.ndarray, k: int) -> np.ndarray:
        """Nearest codes uint8 [M] of one column's weights w_col [M] on column k's grid (as round_codes)."""
        s, o = self.column(k)
        col = np.asarray(w_col, np.float32).reshape(-1, 1)
        return _round(col, s[:, None], o[:, None], self.bits)[:, 0]

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """codes [M, K] -> c * scale + offset, float32 [M, K]."""
        return codes.astype(np.float32) * expand(self.scale, self.block) + expand(self.offset, self.block)


# ---- input checks ------------------------------------------------------------------------------------
def _weight(w, sp=None, *, multiple: int = 0, what: str = "") -> np.ndarray:
    """A finite float32 [M, K] copy/view of w, K a multiple of the type's super-block (or of `multiple`)."""
    if sp is not None:
        multiple, what = sp.superblock, sp.name
    a, _ = to_numpy(w, "w")
    require_floating(a, "w")
    if a.ndim != 2:
        raise ValueError(f"w: expected a 2-d weight [M, K], got shape {a.shape}")
    m, k = a.shape
    if m == 0 or k == 0 or k % multiple:
        raise ValueError(f"w: {what} needs M >= 1 and K a positive multiple of {multiple}, got shape {a.shape}")
    a = np.ascontiguousarray(a, np.float32)
    bad = ~np.isfinite(a)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"w: element (row {r}, column {c}) is {a[r, c]}; quantization needs finite weights")
    return a


def _importance(importance, shape) -> np.ndarray:
    """Per-element weights [M, K] float32 from a [K] or [M, K] non-negative array (None: plain MSE)."""
    m, k = shape
    if importance is None:
        return None
    a, _ = to_numpy(importance, "importance")
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"importance: expected a real-valued array, got dtype {a.dtype}")
    if a.shape not in ((k,), (m, k)):
        raise ValueError(f"importance: expected shape ({k},) (per column) or {(m, k)} (per element), got {a.shape}")
    a = a.astype(np.float32)
    bad = ~(np.isfinite(a) & (a >= 0))
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(f"importance: element {tuple(int(i) for i in where)} is {a[tuple(where)]} "
                         f"(must be finite and >= 0)")
    return np.ascontiguousarray(np.broadcast_to(a, shape))


# ---- the API -------------------------------------------------------------------------------------------
def fit(w, qtype: str, importance=None, *, threads: int | None = None) -> Grid:
    """The least-weighted-squared-error grid of `qtype` for w [M, K] (K a multiple of the super-block:
    256 for K-quants, 32 for the others). importance: None (plain MSE), per-column [K] or per-element
    [M, K] non-negative weights of each weight's squared error (llama.cpp's imatrix idea).
    threads: row chunks fitted at once (numpy releases the GIL); None: all cores. Same result for any."""
    sp = spec(qtype)
    a = _weight(w, sp)
    imp = _importance(importance, a.shape)
    m, k = a.shape
    workers = max_threads() if threads is None else require_int(threads, "threads", 1, max_threads())
    rows = max(1, min(CHUNK_ELEMENTS // k, -(-m // workers)))
    starts = range(0, m, rows)

    def one(r):
        return _fit_rows(a[r:r + rows], None if imp is None else imp[r:r + rows], sp)

    if workers == 1 or len(starts) == 1:
        parts = [one(r) for r in starts]
    else:
        with ThreadPoolExecutor(min(workers, len(starts))) as pool:
            parts = list(pool.map(one, starts))
    fields = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    scale, offset = scale_offset(sp, fields)
    return Grid(sp.name, sp.bits, sp.block, scale, offset, fields)


def _fit_rows(x: np.ndarray, w: np.ndarray, sp) -> dict:
    m, k = x.shape
    xb, wb = x.reshape(-1, sp.block), None if w is None else w.reshape(-1, sp.block)
    levels = 1 << sp.bits
    nb = k // sp.block
    if sp.family == "sym":
        s = _search.fit_symmetric(xb, wb, levels, sp.zero)
        return {"d": to_fp16(s.reshape(m, nb), "d")}
    if sp.family == "affine":
        s, o = _search.fit_affine(xb, wb, levels - 1)
        return {"d": to_fp16(s.reshape(m, nb), "d"), "m": to_fp16(o.reshape(m, nb), "m")}
    if sp.family == "k_affine":
        s, o = _search.fit_affine(xb, wb, levels - 1, nonpos_offset=True)
        return second_level(x, w, sp, s.reshape(m, nb), o.reshape(m, nb), partial(_round, bits=sp.bits))
    s = _search.fit_symmetric(xb, wb, levels, sp.zero)
    return second_level(x, w, sp, s.reshape(m, nb), None, partial(_round, bits=sp.bits))


def _round(x: np.ndarray, scale: np.ndarray, offset: np.ndarray, bits: int) -> np.ndarray:
    """Nearest code per element on the grid (scale, offset) [M, K/block]; code 0 where scale is 0."""
    m, k = x.shape
    nb = scale.shape[1]
    block = k // nb
    s = scale.astype(np.float32)[..., None]
    inv = np.where(s != 0, np.float32(1) / np.where(s != 0, s, np.float32(1)), np.float32(0))
    q = np.rint((x.reshape(m, nb, block) - offset.astype(np.float32)[..., None]) * inv)
    return np.clip(q, 0, (1 << bits) - 1).astype(np.uint8).reshape(m, k)


def round_codes(w, grid: Grid) -> np.ndarray:
    """uint8 [M, K]: the nearest code on `grid` for each weight, clamped to [0, 2^bits)."""
    a = _weight(w, spec(grid.qtype))
    if a.shape != grid.shape:
        raise ValueError(f"w: shape {a.shape} does not match the grid's {grid.shape}")
    return _round(a, grid.scale, grid.offset, grid.bits)


def concat(grids: list[Grid]) -> Grid:
    """Grids of column ranges of one matrix, joined along K (in order)."""
    grids = list(grids)
    if not grids:
        raise ValueError("concat: expected at least one Grid")
    g0 = grids[0]
    for g in grids[1:]:
        if g.qtype != g0.qtype or g.shape[0] != g0.shape[0]:
            raise ValueError(f"concat: grids must share qtype and M; got {g0.qtype} M={g0.shape[0]} and "
                             f"{g.qtype} M={g.shape[0]}")
    join = lambda arrs: np.concatenate(arrs, axis=1)  # noqa: E731
    return Grid(g0.qtype, g0.bits, g0.block, join([g.scale for g in grids]), join([g.offset for g in grids]),
                {key: join([g.fields[key] for g in grids]) for key in g0.fields})


def encode(grid: Grid, codes) -> np.ndarray:
    """uint8 [M, K / superblock * type_bytes]: the standard GGUF blocks of `qtype` (gguf/llama.cpp readable)."""
    sp = spec(grid.qtype)
    c, _ = to_numpy(codes, "codes")
    if not np.issubdtype(c.dtype, np.integer):
        raise TypeError(f"codes: expected an integer array, got dtype {c.dtype}")
    if c.shape != grid.shape:
        raise ValueError(f"codes: expected shape {grid.shape}, got {c.shape}")
    top = (1 << sp.bits) - 1
    bad = (c < 0) | (c > top)
    if bad.any():
        r, k = np.argwhere(bad)[0]
        raise ValueError(f"codes: element ({r}, {k}) is {c[r, k]}, outside 0..{top} for {sp.name}")
    return encode_blocks(sp, grid.fields, np.ascontiguousarray(c, np.uint8))


def quantize(w, qtype: str, importance=None, *, threads: int | None = None) -> np.ndarray:
    """fit + round_codes + encode: GGUF blocks of `qtype`, uint8 [M, K / superblock * type_bytes]."""
    g = fit(w, qtype, importance, threads=threads)
    return encode(g, round_codes(w, g))


def to_lut(w, qtype: str, importance=None, threads: int | None = None):
    """A LUTWeight holding exactly quantize(w, qtype), through LUTWeight.from_gguf."""
    from frugalnn.tmac.weight import LUTWeight

    sp = spec(qtype)  # every type here is one from_gguf imports as stored (tests/tmac/test_quantizers.py)
    a, _ = to_numpy(w, "w")
    blocks = quantize(a, sp.name, importance, threads=threads)
    return LUTWeight.from_gguf(blocks, qtype=sp.name, shape=tuple(a.shape), threads=threads)


def fit_groups(w, bits: int, group_size: int, symmetric: bool, importance=None, *, fp16: bool = False):
    """The LUT kernel's own group formats (LUTWeight.from_float's), fitted by the same search:
    -> (codes uint8 [M, K], scales, offsets float32 [M, K/group_size]) for LUTWeight.from_codes.

    symmetric: mid-rise levels (c - (2^bits - 1)/2) * scale (offset = -scale (2^bits - 1)/2); else
    c * scale + offset with a free offset. fp16: scales and offsets rounded to fp16 (what a file with
    fp16 group scales holds), codes re-chosen after."""
    bits = require_int(bits, "bits", 1, 8)
    group_size = require_int(group_size, "group_size", 1)
    a = _weight(w, multiple=group_size, what=f"group size {group_size}")
    imp = _importance(importance, a.shape)
    m, k = a.shape
    xb, wb = a.reshape(-1, group_size), None if imp is None else imp.reshape(-1, group_size)
    top = (1 << bits) - 1
    if symmetric:  # mirror-symmetric levels: the sign of the scale is free
        s, o = np.abs(_search.fit_symmetric(xb, wb, top + 1, top / 2)), None
    else:
        s, o = _search.fit_affine(xb, wb, top)
    s = to_fp16(s.reshape(m, -1), "group scale", "group") if fp16 else s.reshape(m, -1).astype(np.float32)
    if symmetric:
        o = s * np.float32(-top / 2)  # what LUTWeight's symmetric layout implies, in float32
    else:
        o = to_fp16(o.reshape(m, -1), "group offset", "group") if fp16 else o.reshape(m, -1).astype(np.float32)
    return _round(a, s, o, bits), s, o


__all__ = ["Grid", "QTYPES", "SPECS", "concat", "encode", "fit", "fit_groups", "quantize", "round_codes", "to_lut"]
