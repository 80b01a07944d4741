"""Quantization grids for calibrated quantization: w ~= q * scale + offset, q in [0, 2^bits), one (scale, offset)
per `block` columns of a row. The same interface as frugalnn.tmac.quantizers (kqfit: the K-quant and GGUF
types, MSE-fitted); this module adds what that one does not cover, and a fallback for the two legacy GGUF types:

  - the project's own LUT layouts, named "g{G}b{B}a" (group G, B bits, asymmetric: e.g. "g64b3a", "g128b4a"),
    held by frugalnn.tmac.LUTWeight (float32 scale and offset per group). No GGUF type stores them, so
    `frugalnn quantize` refuses to write them to a file (see gguf_write.py);
  - Q4_0 and Q4_1 (llama.cpp's reference rounding, fp16 block scales), used when quantizers.py lacks them.

fit(w [M, W]) looks at W columns (a multiple of the type's fit width: G for g-formats, 32 for Q4_0/Q4_1) and
returns a Grid; gptq.py calls it on the current, error-updated weights of one group at a time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

LEGACY = {"Q4_0": (4, 32), "Q4_1": (4, 32)}  # type -> (bits, block)
GFORMAT = re.compile(r"^g(\d+)b([2-8])a$")
# Shrink factors tried on each group's [min, max] range (MSE search; 1.0 = plain min/max): clipping the
# extremes of a group trades a few large errors for a finer step everywhere else.
SHRINKS = tuple(1.0 - 0.05 * i for i in range(10))


@dataclass(eq=False)
class Grid:
    qtype: str
    bits: int
    block: int
    scale: np.ndarray   # float32 [M, W / block]
    offset: np.ndarray  # float32 [M, W / block]
    fields: dict = field(default_factory=dict)  # whatever encode() needs beyond scale/offset


def gformat(qtype: str) -> tuple[int, int] | None:
    """(group, bits) of a "g{G}b{B}a" name, else None."""
    m = GFORMAT.match(str(qtype))
    return (int(m.group(1)), int(m.group(2))) if m else None


def is_own(qtype: str) -> bool:
    return gformat(qtype) is not None or qtype in LEGACY


def fit_width(qtype: str) -> int:
    """Columns one fit covers (the group, or the K-quant super-block of 256)."""
    g = gformat(qtype)
    if g is not None:
        return g[0]
    if qtype in LEGACY:
        return LEGACY[qtype][1]
    return 256  # K-quants: one fp16 super-block scale over 256 columns


def _minmax_mse(w: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric grid per row of w [R, G]: the shrink of [min, max] (always containing 0) with least squared
    error. Returns scale, offset [R] float32."""
    maxq = (1 << bits) - 1
    lo = np.minimum(w.min(axis=1), 0).astype(np.float64)
    hi = np.maximum(w.max(axis=1), 0).astype(np.float64)
    best = np.full(w.shape[0], np.inf)
    scale = np.zeros(w.shape[0])
    offset = np.zeros(w.shape[0])
    for s in SHRINKS:
        a, b = lo * s, hi * s
        sc = (b - a) / maxq
        safe = np.where(sc > 0, sc, 1.0)
        zero = np.round(-a / safe)
        q = np.clip(np.round(w / safe[:, None] + zero[:, None]), 0, maxq)
        err = ((q - zero[:, None]) * sc[:, None] - w) ** 2
        e = err.sum(axis=1)
        better = e < best
        best = np.where(better, e, best)
        scale = np.where(better, sc, scale)
        offset = np.where(better, -zero * sc, offset)
    return scale.astype(np.float32), offset.astype(np.float32)


def _blocks(w: np.ndarray, block: int) -> np.ndarray:
    m, k = w.shape
    if k % block:
        raise ValueError(f"w: {k} columns are not a whole number of blocks of {block}")
    return w.reshape(m * (k // block), block)


def fit(w: np.ndarray, qtype: str, importance=None) -> Grid:
    """The grid of w [M, W] for one of this module's types (importance is accepted and unused: plain MSE)."""
    w = np.asarray(w, np.float32)
    m, k = w.shape
    g = gformat(qtype)
    if g is not None:
        group, bits = g
        scale, offset = _minmax_mse(_blocks(w, group).astype(np.float64), bits)
        return Grid(qtype, bits, group, scale.reshape(m, k // group), offset.reshape(m, k // group))
    if qtype == "Q4_0":  # llama.cpp quantize_row_q4_0_ref: d = (value of largest |w|) / -8, w = (q - 8) d
        b = _blocks(w, 32)
        amax = b[np.arange(b.shape[0]), np.abs(b).argmax(axis=1)]
        d = (amax / np.float32(-8)).astype(np.float16).astype(np.float32)
        return Grid(qtype, 4, 32, d.reshape(m, k // 32), (d * np.float32(-8)).reshape(m, k // 32))
    if qtype == "Q4_1":  # quantize_row_q4_1_ref: d = (max - min) / 15, w = q d + min
        b = _blocks(w, 32)
        lo, hi = b.min(axis=1), b.max(axis=1)
        d = ((hi - lo) / np.float32(15)).astype(np.float16).astype(np.float32)
        mn = lo.astype(np.float16).astype(np.float32)
        return Grid(qtype, 4, 32, d.reshape(m, k // 32), mn.reshape(m, k // 32))
    raise ValueError(f"qtype: {qtype!r} is not a grid of frugalnn.tmac.grids (g{{G}}b{{B}}a, {', '.join(LEGACY)})")


def round_codes(w: np.ndarray, grid: Grid) -> np.ndarray:
    """Nearest codes of w [M, W] on `grid` (uint8)."""
    w = np.asarray(w, np.float32)
    m, k = w.shape
    sc = np.repeat(grid.scale, grid.block, axis=1)
    off = np.repeat(grid.offset, grid.block, axis=1)
    inv = np.where(sc != 0, 1 / np.where(sc != 0, sc, 1), 0).astype(np.float32)
    return np.clip(np.rint((w - off) * inv), 0, (1 << grid.bits) - 1).astype(np.uint8)


def dequantize(grid: Grid, codes: np.ndarray) -> np.ndarray:
    sc = np.repeat(grid.scale, grid.block, axis=1)
    off = np.repeat(grid.offset, grid.block, axis=1)
    return codes.astype(np.float32) * sc + off


def concat(grids: list[Grid]) -> Grid:
    """Grids of consecutive column ranges of the same rows -> one grid over all of them."""
    first = grids[0]
    return Grid(first.qtype, first.bits, first.block, np.concatenate([g.scale for g in grids], axis=1),
                np.concatenate([g.offset for g in grids], axis=1))


def encode(grid: Grid, codes: np.ndarray) -> np.ndarray:
    """Standard GGUF block bytes [M, K/32 * bytes] of Q4_0 / Q4_1 (the byte layout gguf.quants reads)."""
    if grid.qtype not in LEGACY:
        raise ValueError(f"{grid.qtype}: the project's own LUT layout has no GGUF type; it cannot be written "
                         f"to a GGUF file (choose --type Q4_0, Q4_1, Q2_K, Q3_K or Q4_K)")
    m, k = codes.shape
    nb = k // 32
    q = codes.reshape(m, nb, 32)
    nib = (q[..., :16] | (q[..., 16:] << 4)).astype(np.uint8)
    d = grid.scale.astype(np.float16).view(np.uint8).reshape(m, nb, 2)
    if grid.qtype == "Q4_0":
        out = np.concatenate([d, nib], axis=-1)
    else:
        mn = grid.offset.astype(np.float16).view(np.uint8).reshape(m, nb, 2)
        out = np.concatenate([d, mn, nib], axis=-1)
    return np.ascontiguousarray(out.reshape(m, -1))


@dataclass(frozen=True)
class Family:
    """One grid family, whichever module implements it: fit / round_codes / concat / encode, fit width, and
    whether GGUF has a type for it."""
    qtype: str
    width: int
    fit: object
    round_codes: object
    concat: object
    encode: object
    gguf: bool

    def dequantize(self, grid, codes: np.ndarray) -> np.ndarray:
        return dequantize(grid, codes)


def family(qtype: str) -> Family:
    """The grid family of `qtype`: g{G}b{B}a here; GGUF types from frugalnn.tmac.quantizers when it has them,
    Q4_0/Q4_1 here otherwise."""
    qtype = str(qtype)
    if gformat(qtype) is not None:
        return Family(qtype, fit_width(qtype), lambda w, imp=None: fit(w, qtype, imp), round_codes, concat, encode,
                      False)
    try:
        from frugalnn.tmac import quantizers as kq
    except ImportError:
        kq = None
    if kq is not None and qtype in getattr(kq, "QTYPES", ()):
        return Family(qtype, fit_width(qtype), lambda w, imp=None: kq.fit(w, qtype, imp), kq.round_codes, kq.concat,
                      kq.encode, True)
    if qtype in LEGACY:
        return Family(qtype, fit_width(qtype), lambda w, imp=None: fit(w, qtype, imp), round_codes, concat, encode,
                      True)
    raise ValueError(f"qtype: {qtype!r} is not available (g{{G}}b{{B}}a LUT layouts, {', '.join(LEGACY)}"
                     f"{', and the K-quants of frugalnn.tmac.quantizers' if kq is not None else ''})")
