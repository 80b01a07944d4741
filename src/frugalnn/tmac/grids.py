"""Grid families for calibrated quantization: w ~= q * scale + offset, q in [0, 2^bits), one (scale, offset) per
`block` columns of a row. GGUF types (Q4_0, Q4_1, Q5_0, Q2_K..Q6_K, ...) come from frugalnn.tmac.quantizers
(kqfit: MSE-fitted, two-level K-quant scales, standard GGUF encoders); this module adds the project's own LUT
layouts under the same interface, named "g{G}b{B}a" (group G, B bits, asymmetric: e.g. "g64b3a", "g128b4a"),
fitted by quantizers.fit_groups (the same least-squares search) and held by frugalnn.tmac.LUTWeight (float32
scale and offset per group). No GGUF type stores them, so `frugalnn quantize` refuses to write them to a file.

family(qtype) bundles fit / round_codes / concat / encode / dequantize and the fit width (columns one fit
covers: G, or the type's super-block); gptq.py calls fit on the current, error-updated weights of one group at
a time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

GFORMAT = re.compile(r"^g(\d+)b([2-8])a$")


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


def fit_width(qtype: str) -> int:
    """Columns one fit covers: the group, or the GGUF type's super-block (256 for K-quants, 32 otherwise)."""
    g = gformat(qtype)
    if g is not None:
        return g[0]
    from frugalnn.tmac.quantizers._formats import spec

    return spec(qtype).superblock


def fit(w: np.ndarray, qtype: str, importance=None) -> Grid:
    """The grid of w [M, W] for a g{G}b{B}a layout (quantizers.fit_groups' least-squares search)."""
    from frugalnn.tmac.quantizers import fit_groups

    g = gformat(qtype)
    if g is None:
        raise ValueError(f"qtype: {qtype!r} is not a LUT layout g{{G}}b{{B}}a")
    group, bits = g
    _, scale, offset = fit_groups(w, bits, group, symmetric=False, importance=importance)
    return Grid(qtype, bits, group, scale, offset)


def round_codes(w: np.ndarray, grid) -> np.ndarray:
    """Nearest codes of w [M, W] on `grid` (uint8)."""
    w = np.asarray(w, np.float32)
    sc = np.repeat(grid.scale, grid.block, axis=1)
    off = np.repeat(grid.offset, grid.block, axis=1)
    inv = np.divide(1.0, sc, out=np.zeros_like(sc), where=sc != 0)
    return np.clip(np.rint((w - off) * inv), 0, (1 << grid.bits) - 1).astype(np.uint8)


def dequantize(grid, codes: np.ndarray) -> np.ndarray:
    sc = np.repeat(np.asarray(grid.scale, np.float32), grid.block, axis=1)
    off = np.repeat(np.asarray(grid.offset, np.float32), grid.block, axis=1)
    return codes.astype(np.float32) * sc + off


def concat(grids: list[Grid]) -> Grid:
    """Grids of consecutive column ranges of the same rows -> one grid over all of them."""
    first = grids[0]
    return Grid(first.qtype, first.bits, first.block, np.concatenate([g.scale for g in grids], axis=1),
                np.concatenate([g.offset for g in grids], axis=1))


def encode(grid: Grid, codes: np.ndarray) -> np.ndarray:
    raise ValueError(f"{grid.qtype}: the project's own LUT layout has no GGUF type; it cannot be written "
                     f"to a GGUF file (choose --type Q4_0, Q4_1, Q2_K, Q3_K or Q4_K)")


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
    """The grid family of `qtype`: g{G}b{B}a here, GGUF types from frugalnn.tmac.quantizers."""
    from frugalnn.tmac import quantizers as kq

    qtype = str(qtype)
    if gformat(qtype) is not None:
        return Family(qtype, fit_width(qtype), lambda w, imp=None: fit(w, qtype, imp), round_codes, concat, encode,
                      False)
    if qtype in kq.QTYPES:
        return Family(qtype, fit_width(qtype), lambda w, imp=None: kq.fit(w, qtype, imp, threads=1), kq.round_codes,
                      kq.concat, kq.encode, True)
    raise ValueError(f"qtype: {qtype!r} is not available (LUT layouts g{{G}}b{{B}}a, GGUF types "
                     f"{', '.join(kq.QTYPES)})")
