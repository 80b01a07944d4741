"""The llama.cpp block types a Grid can describe, and their standard GGUF byte layouts (encode side).

Each type's effective weight, per sub-block of `block` elements, is w = c * scale + offset with code c in
[0, 2^bits); the stored fields and how scale/offset follow from them (float32, in gguf.quants' order):
  Q4_0/Q5_0/Q8_0  d (fp16)                     scale = d, offset = -z d (z = 8 / 16 / 128)
  Q4_1/Q5_1       d, m (fp16)                  scale = d, offset = m
  Q2_K/Q4_K/Q5_K  d, dmin (fp16 per 256), sc, mn (unsigned 4-/6-bit per sub-block)
                                               scale = d * sc, offset = -(dmin * mn)
  Q3_K/Q6_K       d (fp16 per 256), sc (signed 6-/8-bit per sub-block)
                                               scale = d * sc, offset = -z scale (z = 4 / 32)
The byte layouts mirror gguf.quants' decoders (checked against them in tests/tmac/test_quantizers.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spec:
    name: str
    bits: int  # code bits
    block: int  # elements per (scale, offset)
    superblock: int  # elements per stored block
    type_bytes: int  # bytes per stored block
    family: str  # "sym", "affine", "k_affine", "k_sym"
    zero: int = 0  # code of weight 0 in the symmetric families
    sub_lo: int = 0  # integer sub-block scale range (K-quants)
    sub_hi: int = 0

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.type_bytes / self.superblock


SPECS = {s.name: s for s in (
    Spec("Q4_0", 4, 32, 32, 18, "sym", zero=8),
    Spec("Q5_0", 5, 32, 32, 22, "sym", zero=16),
    Spec("Q8_0", 8, 32, 32, 34, "sym", zero=128),
    Spec("Q4_1", 4, 32, 32, 20, "affine"),
    Spec("Q5_1", 5, 32, 32, 24, "affine"),
    Spec("Q2_K", 2, 16, 256, 84, "k_affine", sub_hi=15),
    Spec("Q4_K", 4, 32, 256, 144, "k_affine", sub_hi=63),
    Spec("Q5_K", 5, 32, 256, 176, "k_affine", sub_hi=63),
    Spec("Q3_K", 3, 16, 256, 110, "k_sym", zero=4, sub_lo=-32, sub_hi=31),
    Spec("Q6_K", 6, 16, 256, 210, "k_sym", zero=32, sub_lo=-128, sub_hi=127),
)}
QTYPES = tuple(SPECS)


def spec(qtype) -> Spec:
    name = getattr(qtype, "name", qtype)
    if not isinstance(name, str) or name.upper() not in SPECS:
        raise ValueError(f"qtype: expected one of {', '.join(QTYPES)}, got {qtype!r}")
    return SPECS[name.upper()]


def to_fp16(a: np.ndarray, what: str, unit: str = "block") -> np.ndarray:
    """float64 [M, n] -> float32 holding the fp16-rounded values; refuses values past fp16's range
    (llama.cpp would store inf)."""
    big = ~(np.abs(a) <= 65504.0)
    if big.any():
        r, b = np.argwhere(big)[0]
        raise ValueError(f"w: row {r}, {unit} {b}: {what} {a[r, b]:.4g} exceeds fp16's range "
                         f"(weights too large for this type's fp16 scales)")
    return a.astype(np.float16).astype(np.float32)


def expand(a: np.ndarray, block: int) -> np.ndarray:
    """[M, n] per-block values -> [M, n * block]."""
    return np.repeat(a, block, axis=1)


def scale_offset(sp: Spec, fields: dict) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) float32 [M, K/block] from the stored fields, with gguf.quants' float32 arithmetic."""
    f32 = np.float32
    if sp.family == "sym":
        d = fields["d"].astype(f32)
        return d, d * f32(-sp.zero)
    if sp.family == "affine":
        return fields["d"].astype(f32), fields["m"].astype(f32)
    per = sp.superblock // sp.block
    d = expand(fields["d"].astype(f32), per)
    scale = d * fields["sc"].astype(f32)
    if sp.family == "k_affine":
        return scale, -(expand(fields["dmin"].astype(f32), per) * fields["mn"].astype(f32))
    return scale, scale * f32(-sp.zero)


# ---- encoders: (fields, codes [M, K] uint8) -> uint8 [M, K/superblock, type_bytes] ----------------------
def _f16(a: np.ndarray) -> np.ndarray:
    """[..., n] float32 holding fp16 values -> [..., n, 2] uint8 (little-endian fp16)."""
    return a.astype(np.float16)[..., None].view(np.uint8)


def _nibbles(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (lo & 0x0F) | ((hi & 0x0F) << 4)


def _encode_legacy(sp: Spec, fields: dict, q: np.ndarray) -> np.ndarray:
    m, nb = q.shape[0], q.shape[1] // 32
    q = q.reshape(m, nb, 32)
    parts = [_f16(fields["d"])]
    if sp.family == "affine":
        parts.append(_f16(fields["m"]))
    if sp.bits == 8:
        parts.append((q.astype(np.int16) - 128).astype(np.int8).view(np.uint8))
    else:
        if sp.bits == 5:  # bit 4 of element j is bit j of a little-endian uint32
            parts.append(np.packbits((q >> 4) & 1, axis=-1, bitorder="little"))
        parts.append(_nibbles(q[..., :16], q[..., 16:]))
    return np.concatenate(parts, axis=-1)


def _pack_2bit(q: np.ndarray) -> np.ndarray:
    """[..., 256] codes < 4 -> [..., 64]: byte 32 h + j holds elements 128 h + 32 s + j at bits 2 s."""
    g = q.reshape(*q.shape[:-1], 2, 4, 32).astype(np.uint8)
    out = g[..., 0, :] | (g[..., 1, :] << 2) | (g[..., 2, :] << 4) | (g[..., 3, :] << 6)
    return out.reshape(*q.shape[:-1], 64)


def _k4_scales(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """8 six-bit scales and mins -> the 12-byte get_scale_min_k4 packing."""
    sc, mn = sc.astype(np.uint8), mn.astype(np.uint8)
    b0 = (sc[..., :4] & 0x3F) | ((sc[..., 4:] >> 4) << 6)
    b4 = (mn[..., :4] & 0x3F) | ((mn[..., 4:] >> 4) << 6)
    b8 = (sc[..., 4:] & 0x0F) | ((mn[..., 4:] & 0x0F) << 4)
    return np.concatenate([b0, b4, b8], axis=-1)


def _encode_q2_k(fields, q):
    m, ns = q.shape[0], q.shape[1] // 256
    sc = fields["sc"].reshape(m, ns, 16).astype(np.uint8)
    mn = fields["mn"].reshape(m, ns, 16).astype(np.uint8)
    return np.concatenate([sc | (mn << 4), _pack_2bit(q.reshape(m, ns, 256)), _f16(fields["d"]),
                           _f16(fields["dmin"])], axis=-1)


def _encode_q3_k(fields, q):
    m, ns = q.shape[0], q.shape[1] // 256
    q = q.reshape(m, ns, 256)
    hmask = np.packbits(((q >> 2) & 1).reshape(m, ns, 8, 32), axis=2, bitorder="little").reshape(m, ns, 32)
    s = (fields["sc"].reshape(m, ns, 16).astype(np.int16) + 32).astype(np.uint8)
    low = _nibbles(s[..., :8], s[..., 8:])
    hi2 = (s >> 4) & 3  # scale j: bits 2 (j // 4) of byte 8 + j % 4
    high = hi2[..., 0:4] | (hi2[..., 4:8] << 2) | (hi2[..., 8:12] << 4) | (hi2[..., 12:16] << 6)
    return np.concatenate([hmask, _pack_2bit(q & 3), low, high, _f16(fields["d"])], axis=-1)


def _encode_q45_k(fields, q, bits):
    m, ns = q.shape[0], q.shape[1] // 256
    q = q.reshape(m, ns, 256)
    parts = [_f16(fields["d"]), _f16(fields["dmin"]),
             _k4_scales(fields["sc"].reshape(m, ns, 8), fields["mn"].reshape(m, ns, 8))]
    if bits == 5:  # bit i of qh[l] is bit 4 of element 32 i + l
        parts.append(np.packbits(((q >> 4) & 1).reshape(m, ns, 8, 32), axis=2, bitorder="little").reshape(m, ns, 32))
    c = q.reshape(m, ns, 4, 2, 32)  # 64-element chunks: low nibbles = first 32, high = next 32
    parts.append(_nibbles(c[..., 0, :], c[..., 1, :]).reshape(m, ns, 128))
    return np.concatenate(parts, axis=-1)


def _encode_q6_k(fields, q):
    m, ns = q.shape[0], q.shape[1] // 256
    h = q.reshape(m, ns, 2, 128)
    ql = _nibbles(h[..., :64], h[..., 64:]).reshape(m, ns, 128)
    top = (h >> 4).reshape(m, ns, 2, 4, 32)
    qh = (top[..., 0, :] | (top[..., 1, :] << 2) | (top[..., 2, :] << 4) | (top[..., 3, :] << 6)).reshape(m, ns, 64)
    sc = fields["sc"].reshape(m, ns, 16).astype(np.int8).view(np.uint8)
    return np.concatenate([ql, qh, sc, _f16(fields["d"])], axis=-1)


def encode_blocks(sp: Spec, fields: dict, codes: np.ndarray) -> np.ndarray:
    """uint8 [M, K / superblock * type_bytes]."""
    if sp.family in ("sym", "affine"):
        out = _encode_legacy(sp, fields, codes)
    elif sp.name == "Q2_K":
        out = _encode_q2_k(fields, codes)
    elif sp.name == "Q3_K":
        out = _encode_q3_k(fields, codes)
    elif sp.name in ("Q4_K", "Q5_K"):
        out = _encode_q45_k(fields, codes, sp.bits)
    else:
        out = _encode_q6_k(fields, codes)
    assert out.shape[-1] == sp.type_bytes, (sp.name, out.shape)
    return np.ascontiguousarray(out.reshape(codes.shape[0], -1))
