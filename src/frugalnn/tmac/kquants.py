"""llama.cpp's K-quant super-blocks (Q2_K..Q6_K) decoded to codes plus their TWO-LEVEL scales.

Every K-quant weight of super-block b (256 elements), sub-block s (16 or 32 elements) is
    w = (d * sc) * (q - z0) - (dmin * mn)          (float32, in this order; gguf-py's dequantize)
with d, dmin the super-block's fp16 scales, sc / mn small integer sub-block scale and min, q an
unsigned code and z0 a fixed integer zero:

    type  bits  sub  sc             mn          z0   bytes/256
    Q2_K  2     16   4-bit u        4-bit u     0    84   (scales[16] qs[64] d dmin)
    Q3_K  3     16   6-bit - 32     -           4    110  (hmask[32] qs[64] scales[12] d)
    Q4_K  4     32   6-bit u        6-bit u     0    144  (d dmin scales[12] qs[128])
    Q5_K  5     32   6-bit u        6-bit u     0    176  (d dmin scales[12] qh[32] qs[128])
    Q6_K  6     16   int8           -           32   210  (ql[128] qh[64] scales[16] d)

The codes go into the T-MAC layout unchanged; sc / mn stay integers and d / dmin stay fp16, so the
kernel can apply sub-scales in the integer domain and convert to float once per super-block
(csrc/lut/kquant.h). Q3_K's code is low2 | 4 * hbit (the file's "subtract 4 when the high bit is 0").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QK = 256
# The one-level fp16 types in the same form (super-block = sub-block = the file's block of 32; no
# sub-scale bytes, sc = mn = 1): Q4_0 (d (q - 8)), Q4_1 (d q - (-m)), Q5_0, Q5_1, Q8_0 (d (q - 128)).
# name -> (block bytes, bits, sub-block size, zero z0, scale format, has min, block elements)
ONE_LEVEL = {
    "Q4_0": (18, 4, 32, 8, "one", False, 32),
    "Q4_1": (20, 4, 32, 0, "one", True, 32),
    "Q5_0": (22, 5, 32, 16, "one", False, 32),
    "Q5_1": (24, 5, 32, 0, "one", True, 32),
    "Q8_0": (34, 8, 32, 128, "one", False, 32),
    # TQ2_0: d (q - 1), q in {0, 1, 2}, one fp16 d per 256 (2.06 b/w). The sub-block size is free with sc = 1;
    # 64 is the kernel's largest (csrc/lut/bind.cpp), the fewest sub-block folds.
    "TQ2_0": (66, 2, 64, 1, "one", False, 256),
}
# name -> (block bytes, bits, sub-block size, zero z0, scale format, has min)
#   scale formats (how LUTWeight stores the sub-scales, see weight.py): "u8" sc and mn one byte each,
#   "nib" sc | mn << 4 in one byte (Q2_K: the file's own byte), "i8" a signed byte, no min.
KQUANTS = {
    "Q2_K": (84, 2, 16, 0, "nib", True),
    "Q3_K": (110, 3, 16, 4, "i8", False),
    "Q4_K": (144, 4, 32, 0, "u8", True),
    "Q5_K": (176, 5, 32, 0, "u8", True),
    "Q6_K": (210, 6, 16, 32, "i8", False),
}
SPECS = {**{n: (*v, QK) for n, v in KQUANTS.items()}, **ONE_LEVEL}


@dataclass
class KQuantBlocks:
    """One K-quant matrix [M, K], decoded: arrays per row and super-block."""

    name: str
    codes: np.ndarray  # uint8 [M, K], 0 .. 2^bits - 1
    sc: np.ndarray  # int16 [M, K/256, 256/sub]: the integer sub-block scale (signed for Q3_K / Q6_K)
    mn: np.ndarray | None  # int16 [M, K/256, 256/sub] or None
    d: np.ndarray  # float16 [M, K/256]
    dmin: np.ndarray | None  # float16 [M, K/256] or None

    @property
    def bits(self) -> int:
        return SPECS[self.name][1]

    @property
    def sub(self) -> int:
        return SPECS[self.name][2]

    @property
    def zero(self) -> int:
        return SPECS[self.name][3]

    @property
    def block(self) -> int:
        return SPECS[self.name][6]


def _f16(blocks: np.ndarray, start: int) -> np.ndarray:
    return blocks[..., start:start + 2].copy().view(np.float16)[..., 0]


def _planes(packed: np.ndarray, group: int, shifts, mask: int) -> np.ndarray:
    """Bytes in runs of `group`; field f (at shift shifts[f]) of byte j of run r is element
    (r * len(shifts) + f) * group + j."""
    lead = packed.shape[:-1]
    runs = packed.reshape(*lead, -1, 1, group)
    sh = np.array(shifts, np.uint8).reshape(len(shifts), 1)
    return ((runs >> sh) & mask).reshape(*lead, -1)


def _scale_min_k4(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K / Q5_K: 12 bytes -> 8 six-bit scales and 8 six-bit mins.
    bytes 0-3: scale j (low 6 bits) + scale j+4's top 2; 4-7: min j + min j+4's top 2;
    8-11: scale j+4 low nibble, min j+4 high nibble."""
    a, b, c = s[..., 0:4], s[..., 4:8], s[..., 8:12]
    sc = np.concatenate([a & 0x3F, (c & 0x0F) | ((a >> 2) & 0x30)], axis=-1)
    mn = np.concatenate([b & 0x3F, (c >> 4) | ((b >> 2) & 0x30)], axis=-1)
    return sc, mn


def _q2_k(b):
    sc_b, qs = b[..., :16], b[..., 16:80]
    codes = _planes(qs, 32, (0, 2, 4, 6), 3)
    return codes, sc_b & 0x0F, sc_b >> 4, _f16(b, 80), _f16(b, 82)


def _q3_k(b):
    hmask, qs, s = b[..., :32], b[..., 32:96], b[..., 96:108]
    low = _planes(qs, 32, (0, 2, 4, 6), 3)
    high = _planes(hmask, 32, tuple(range(8)), 1)
    codes = low | (high << 2)
    lo4 = np.concatenate([s[..., 0:8] & 0x0F, s[..., 0:8] >> 4], axis=-1)  # scale i and 8 + i
    hi2 = _planes(s[..., 8:12], 4, (0, 2, 4, 6), 3)  # byte i >> 2l -> scale 4l + i
    sc = (lo4 | (hi2 << 4)).astype(np.int16) - 32
    return codes, sc, None, _f16(b, 108), None


def _q4_k(b):
    sc, mn = _scale_min_k4(b[..., 4:16])
    codes = _planes(b[..., 16:144], 32, (0, 4), 0x0F)
    return codes, sc, mn, _f16(b, 0), _f16(b, 2)


def _q5_k(b):
    sc, mn = _scale_min_k4(b[..., 4:16])
    qh, qs = b[..., 16:48], b[..., 48:176]
    codes = _planes(qs, 32, (0, 4), 0x0F) | (_planes(qh, 32, tuple(range(8)), 1) << 4)
    return codes, sc, mn, _f16(b, 0), _f16(b, 2)


def _q6_k(b):
    ql, qh, s = b[..., :128], b[..., 128:192], b[..., 192:208]
    codes = _planes(ql, 64, (0, 4), 0x0F) | (_planes(qh, 32, (0, 2, 4, 6), 3) << 4)
    return codes, s.view(np.int8).astype(np.int16), None, _f16(b, 208), None


def _nibbles32(qs):
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # byte j: element j (low), j + 16 (high)


def _high32(b, start):
    qh = b[..., start:start + 4]  # little-endian uint32: bit j is bit 4 of element j
    return ((qh[..., :, None] >> np.arange(8, dtype=np.uint8)) & 1).reshape(*qh.shape[:-1], 32)


def _one(b):
    return np.ones((*b.shape[:-1], 1), np.int16)


def _ones(b, n):
    return np.ones((*b.shape[:-1], n), np.int16)


def _tq2_0(b):
    from frugalnn.tmac.gguf import _tq2_0 as fields  # codes and the code-3 check, as the f32 form decodes them

    return fields(b)[0], _ones(b, 4), None, _f16(b, 64), None


def _neg(h):
    return (-h.astype(np.float32)).astype(np.float16)  # exact: negation of a half


_DECODERS = {
    "Q2_K": _q2_k, "Q3_K": _q3_k, "Q4_K": _q4_k, "Q5_K": _q5_k, "Q6_K": _q6_k,
    "Q4_0": lambda b: (_nibbles32(b[..., 2:18]), _one(b), None, _f16(b, 0), None),
    "Q4_1": lambda b: (_nibbles32(b[..., 4:20]), _one(b), _one(b), _f16(b, 0), _neg(_f16(b, 2))),
    "Q5_0": lambda b: (_nibbles32(b[..., 6:22]) | (_high32(b, 2) << 4), _one(b), None, _f16(b, 0), None),
    "Q5_1": lambda b: (_nibbles32(b[..., 8:24]) | (_high32(b, 4) << 4), _one(b), _one(b), _f16(b, 0),
                       _neg(_f16(b, 2))),
    "Q8_0": lambda b: ((b[..., 2:34].view(np.int8).astype(np.int16) + 128).astype(np.uint8), _one(b), None,
                       _f16(b, 0), None),
    "TQ2_0": _tq2_0,
}


def decode_blocks(blocks: np.ndarray, name: str, label: str = "tensor") -> KQuantBlocks:
    """blocks uint8 [M, K/block, block bytes] -> KQuantBlocks. A non-finite d or dmin is a ValueError naming
    `label`, the row and the super-block (a corrupted file: every weight of the block would be NaN/inf)."""
    m, nsb, _ = blocks.shape
    codes, sc, mn, d, dmin = _DECODERS[name](blocks)
    for what, v in (("d", d), ("dmin", dmin)):
        if v is not None and not np.isfinite(v).all():
            r, s = np.argwhere(~np.isfinite(v))[0]
            raise ValueError(f"{label}: {name} block {s} of row {r} (block {r * nsb + s} of the tensor) has a "
                             f"non-finite {what} = {v[r, s]} (corrupted data)")
    block = SPECS[name][6]
    nsub = block // SPECS[name][2]
    sc = sc.astype(np.int16).reshape(m, nsb, nsub)
    mn = None if mn is None else mn.astype(np.int16).reshape(m, nsb, nsub)
    return KQuantBlocks(name, codes.astype(np.uint8).reshape(m, nsb * block), sc, mn, d, dmin)


def dequantize(kq: KQuantBlocks) -> np.ndarray:
    """float32 [M, K], bit for bit gguf.quants.dequantize: (d * sc) * (q - z0) - dmin * mn."""
    m, k = kq.codes.shape
    nsb, nsub = kq.sc.shape[1], kq.sc.shape[2]
    q = (kq.codes.astype(np.int16) - kq.zero).astype(np.float32).reshape(m, nsb, nsub, kq.sub)
    dl = (kq.d.astype(np.float32)[:, :, None] * kq.sc.astype(np.float32))[..., None]
    out = dl * q
    if kq.mn is not None:
        out = out - (kq.dmin.astype(np.float32)[:, :, None] * kq.mn.astype(np.float32))[..., None]
    return out.reshape(m, k)


@dataclass(eq=False)
class KScales:
    """A LUTWeight's two-level scales, unit-major as the kernel reads them (csrc/lut/layout.h):
    sc (and mn) uint8 [units, super-blocks, 256/sub, 32], d (and dmin) fp16 bits uint16 [units, super-blocks, 32]."""

    fmt: str  # "u8" (sc, mn separate bytes), "nib" (sc | mn << 4), "i8" (signed sc, no min), "one" (none: sc = mn = 1)
    sub: int
    zero: int
    sc: np.ndarray
    mn: np.ndarray | None
    d: np.ndarray
    dmin: np.ndarray | None
    name: str = ""  # the GGUF type it came from

    @property
    def has_min(self) -> bool:
        return self.fmt == "nib" or self.mn is not None or (self.fmt == "one" and self.dmin is not None)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.sc, self.mn, self.d, self.dmin) if a is not None))

    def row_major(self, m: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """(sc int16 [M, sb, nsub], mn or None, d float16 [M, sb], dmin or None): the decoded values."""
        def rows4(a):
            return a.transpose(0, 3, 1, 2).reshape(-1, a.shape[1], a.shape[2])[:m]

        def rows3(a):
            return a.transpose(0, 2, 1).reshape(-1, a.shape[1])[:m].view(np.float16)

        if self.fmt == "one":
            nsb = self.d.shape[1]
            sc = np.ones((m, nsb, SPECS[self.name][6] // self.sub if self.name in SPECS else 1), np.int16)
            return sc, (sc if self.dmin is not None else None), rows3(self.d), \
                None if self.dmin is None else rows3(self.dmin)
        raw = rows4(self.sc)
        if self.fmt == "i8":
            sc, mn = raw.view(np.int8).astype(np.int16), None
        elif self.fmt == "nib":
            sc, mn = (raw & 15).astype(np.int16), (raw >> 4).astype(np.int16)
        else:
            sc, mn = raw.astype(np.int16), None if self.mn is None else rows4(self.mn).astype(np.int16)
        return sc, mn, rows3(self.d), None if self.dmin is None else rows3(self.dmin)


def _unit_major(a: np.ndarray, units: int) -> np.ndarray:
    """[M, ...] -> [units, ..., 32] (padding rows zero)."""
    m = a.shape[0]
    out = np.zeros((units * 32, *a.shape[1:]), a.dtype)
    out[:m] = a
    out = out.reshape(units, 32, *a.shape[1:])
    return np.ascontiguousarray(np.moveaxis(out, 1, -1))


def kscales(kq: KQuantBlocks, units: int) -> KScales:
    """The stored form of a decoded matrix's scales (the formats of KQUANTS)."""
    fmt = SPECS[kq.name][4]
    if fmt == "one":  # nothing per sub-block but the fp16 scales
        sc, mn = np.zeros((kq.sc.shape[0], 0), np.uint8), None
    elif fmt == "nib":
        sc, mn = (kq.sc | (kq.mn << 4)).astype(np.uint8), None
    elif fmt == "i8":
        sc, mn = kq.sc.astype(np.int8).view(np.uint8), None
    else:
        sc, mn = kq.sc.astype(np.uint8), None if kq.mn is None else kq.mn.astype(np.uint8)
    d = _unit_major(kq.d.view(np.uint16), units)
    dmin = None if kq.dmin is None else _unit_major(kq.dmin.view(np.uint16), units)
    stored = np.zeros(0, np.uint8) if fmt == "one" else _unit_major(sc, units)
    return KScales(fmt, kq.sub, kq.zero, stored, None if mn is None else _unit_major(mn, units), d, dmin, kq.name)


def blocks_of(ks: KScales, codes: np.ndarray) -> KQuantBlocks:
    """Back to the decoded form (for dequantize)."""
    sc, mn, d, dmin = ks.row_major(codes.shape[0])
    return KQuantBlocks(ks.name, codes, sc, mn, d, dmin)
