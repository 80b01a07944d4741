"""Numpy reference of `frugalnn._core.lut`: same signatures (outputs passed in), same bits.

Layouts and the exact float32 operation order are documented in csrc/lut/layout.h and serial.h.
Integer sums are exact, so only the float32 steps need to follow the same order.
"""
from __future__ import annotations

import numpy as np

UNIT_ROWS = 32
SPECIAL_MAGNITUDE = np.float32(2.0**125)
MAX_GROUP = 1 << 26  # isum (G/4 entries of at most 127) fits int32
_TINY_TABLE = np.float32(2.0**-100)  # below: quantize 2^64 T (127 / maxabs would overflow float32)
_TINY_SCALE = np.float32(2.0**64)
_F32 = np.float32


def _check(m: int, k: int, group: int, bits: int) -> None:
    if not 1 <= bits <= 8:
        raise ValueError(f"bits: expected 1..8, got {bits}")
    if m < 0:
        raise ValueError(f"M: expected >= 0, got {m}")
    if k <= 0 or k % 4:
        raise ValueError(f"K: expected a positive multiple of 4, got {k}")
    if group < 4 or group % 4:
        raise ValueError(f"group_size: expected a positive multiple of 4, got {group}")
    if k % group:
        raise ValueError(f"group_size: {group} does not divide K = {k}")
    if group > MAX_GROUP:
        raise ValueError(f"group_size: {group} exceeds the kernel's limit of 2^26 = {MAX_GROUP} "
                         "(the int32 table sum of one group)")


def layout_sizes(m: int, k: int, group_size: int, bits: int) -> tuple[int, int, int, int]:
    """(units, groups, packed bytes, table bytes per column)."""
    _check(m, k, group_size, bits)
    units, groups, spg = -(-m // UNIT_ROWS), k // group_size, -(-group_size // 8)
    return units, groups, units * groups * spg * bits * 32, groups * spg * 32


def _slab_positions(bits: int) -> tuple[np.ndarray, np.ndarray]:
    """row[slab, i, h], plane[slab, i, h] of every nibble of a step (layout.h, slab_position)."""
    slab, i, h = np.meshgrid(np.arange(bits), np.arange(16), np.arange(2), indexing="ij")
    pair = slab < (bits // 2) * 2
    acc = np.where(pair, 2 * (slab % 2) + h, 2 * h + i % 2)
    j = i // 2
    row = 16 * (acc // 2) + 8 * (j % 2) + 4 * (acc % 2) + j // 2
    plane = np.where(pair, 2 * (slab // 2) + i % 2, bits - 1)
    return row, plane


def _plane_indices(codes: np.ndarray, bits: int, group: int) -> np.ndarray:
    """codes [M, K] -> 4-bit plane indices [Mpad, groups, chunks (even), bits]."""
    m, k = codes.shape
    units, groups = -(-m // UNIT_ROWS), k // group
    cpg = group // 4
    q = np.zeros((units * UNIT_ROWS, k), np.uint8)
    q[:m] = codes
    bitsq = (q[..., None] >> np.arange(bits, dtype=np.uint8)) & 1  # [Mp, K, b]
    bitsq = bitsq.reshape(units * UNIT_ROWS, groups, cpg, 4, bits)
    idx = (bitsq << np.arange(4, dtype=np.uint8)[:, None]).sum(axis=3, dtype=np.uint8)  # [Mp, g, cpg, b]
    if cpg % 2:
        idx = np.concatenate([idx, np.zeros_like(idx[:, :, :1])], axis=2)
    return idx


def transform(codes, bits, group_size, packed, threads=-1):
    m, k = codes.shape
    units, groups, nbytes, _ = layout_sizes(m, k, group_size, bits)
    if packed.shape != (nbytes,):
        raise ValueError(f"packed: expected shape ({nbytes},), got {packed.shape}")
    if codes.size and int(codes.max()) >> bits:
        raise ValueError(f"codes: value {int(codes.max())} does not fit in {bits} bits")
    idx = _plane_indices(codes, bits, group_size)
    spg = idx.shape[2] // 2
    # [rows, planes, units, groups, steps, lanes]
    j = idx.reshape(units, UNIT_ROWS, groups, spg, 2, bits).transpose(1, 5, 0, 2, 3, 4)
    row, plane = _slab_positions(bits)
    nib = j[row, plane]  # [slab, i, h, units, groups, steps, lanes]
    byte = nib[:, :, 0] | (nib[:, :, 1] << 4)  # [slab, i, units, groups, steps, lanes]
    packed[...] = byte.transpose(2, 3, 4, 0, 5, 1).reshape(-1)


def untransform(packed, bits, group_size, codes, threads=-1):
    m, k = codes.shape
    units, groups, nbytes, _ = layout_sizes(m, k, group_size, bits)
    if packed.shape != (nbytes,):
        raise ValueError(f"packed: expected shape ({nbytes},), got {packed.shape}")
    spg = -(-group_size // 8)
    byte = packed.reshape(units, groups, spg, bits, 2, 16).transpose(3, 5, 0, 1, 2, 4)  # [slab, i, u, g, st, L]
    row, plane = _slab_positions(bits)
    j = np.zeros((UNIT_ROWS, bits, units, groups, spg, 2), np.uint8)
    for h in range(2):
        j[row[:, :, h], plane[:, :, h]] = (byte >> (4 * h)) & 15
    idx = j.transpose(2, 0, 3, 4, 5, 1).reshape(units * UNIT_ROWS, groups, 2 * spg, bits)[:, :, : group_size // 4]
    t_bits = (idx[:, :, :, None, :] >> np.arange(4, dtype=np.uint8)[:, None]) & 1  # [Mp, g, cpg, t, b]
    q = (t_bits << np.arange(bits, dtype=np.uint8)).sum(axis=4, dtype=np.uint8)
    codes[...] = q.reshape(units * UNIT_ROWS, k)[:m]


def _upper_tables(x: np.ndarray) -> np.ndarray:
    """x [..., K] -> T[..., K/4, 8] = entries 8..15 in the order of serial.h chunk_table_upper."""
    a = x.reshape(*x.shape[:-1], -1, 4)
    a0, a1, a2, a3 = (a[..., t] for t in range(4))
    out = np.empty((*a.shape[:-1], 8), _F32)
    for j in range(8):
        u = (a0 if j & 1 else -a0) + (a1 if j & 2 else -a1)
        v = u + (a2 if j & 4 else -a2)
        out[..., j] = v + a3
    return out


def quantized_tables(x: np.ndarray, group: int):
    """x [N, K] (no special values) -> (qT [N, groups, cpg, 16] int8, ts [N, groups], isum [N, groups])."""
    n, k = x.shape
    groups, cpg = k // group, group // 4
    up = _upper_tables(x.astype(_F32, copy=False)).reshape(n, groups, cpg, 8)
    maxabs = np.abs(up).max(axis=(2, 3)) if cpg else np.zeros((n, groups), _F32)
    tiny = (maxabs > 0) & (maxabs < _TINY_TABLE)
    if tiny.any():
        with np.errstate(over="ignore"):  # the product is kept only where the group is tiny
            up = np.where(tiny[:, :, None, None], up * _TINY_SCALE, up)
    top = maxabs.copy()
    top[tiny] = maxabs[tiny] * _TINY_SCALE
    inv = np.where(top > 0, _F32(127) / np.where(top > 0, top, _F32(1)), _F32(0)).astype(_F32)
    ts = (maxabs / _F32(127)).astype(_F32)
    q = np.clip(np.rint(up * inv[:, :, None, None]), -127, 127).astype(np.int8)
    qt = np.concatenate([-q[..., ::-1], q], axis=-1)
    isum = q[..., 7].astype(np.int32).sum(axis=2, dtype=np.int32)
    return qt, ts, isum


def build_tables(x, group_size, tables, ts, isum):
    k = x.shape[0]
    _, groups, _, tb = layout_sizes(0, k, group_size, 1)
    bad = ~(np.abs(x) < SPECIAL_MAGNITUDE)
    if bad.any():
        raise ValueError(f"x: element {int(np.argmax(bad))} is NaN/inf or beyond 2^125 (tables exclude it)")
    qt, t, s = quantized_tables(x[None], group_size)
    cpg = group_size // 4
    out = np.zeros((groups, 2 * -(-cpg // 2), 16), np.int8)
    out[:, :cpg] = qt[0]
    tables[...] = out.reshape(tb)
    ts[...] = t[0]
    isum[...] = s[0]


def _prelude(x, packed, m, bits, group_size, out):
    """What both GEMMs start from, after their own argument checks: out's shape checked; None when there is
    nothing to compute; else (special mask, int8 tables [N, g, cpg, 16], ts, isum, codes [M, K], plane indices
    [M, g, cpg, b]), the tables built from x with its special values (NaN/inf/huge, added back by the caller) zeroed."""
    n, k = x.shape
    if out.shape != (n, m):
        raise ValueError(f"out: expected shape {(n, m)}, got {out.shape}")
    if n == 0 or m == 0:
        return None
    special = ~(np.abs(x) < SPECIAL_MAGNITUDE)
    clean = np.where(special, _F32(0), x).astype(_F32)
    qt, ts, isum = quantized_tables(clean, group_size)
    codes = np.empty((m, k), np.uint8)
    untransform(packed, bits, group_size, codes)
    idx = _plane_indices(codes, bits, group_size)[:m, :, :group_size // 4]
    return special, qt, ts, isum, codes, idx


def matmul(x, packed, ws, zt, m, bits, group_size, has_zero, out, threads=-1, units=1, cols=1, col_block=32,
           prefetch=0):
    n, k = x.shape
    n_units, groups, _, _ = layout_sizes(m, k, group_size, bits)
    for name, a in (("ws", ws), ("zt", zt)):
        if a.shape != (n_units, groups, UNIT_ROWS):
            raise ValueError(f"{name}: expected shape {(n_units, groups, UNIT_ROWS)}, got {a.shape}")
    prelude = _prelude(x, packed, m, bits, group_size, out)
    if prelude is None:
        return
    special, qt, ts, isum, codes, idx = prelude
    cpg = group_size // 4
    w_s = ws.transpose(0, 2, 1).reshape(-1, groups)[:m]  # [M, groups]
    w_z = zt.transpose(0, 2, 1).reshape(-1, groups)[:m]
    weights = (1 << np.arange(bits)).astype(np.int64)
    y = np.zeros((n, m), _F32)
    chunk = np.arange(cpg)
    for g in range(groups):
        acc = np.zeros((n, m), np.int64)
        for p in range(bits):
            look = qt[:, g][:, chunk[None, :], idx[:, g, :, p]]  # [N, M, cpg]
            acc += weights[p] * look.sum(axis=2, dtype=np.int64)
        t = ts[:, g, None]
        y = y + (acc.astype(_F32) * w_s[None, :, g]) * t  # float steps in layout.h's order
        if has_zero:
            y = y + (w_z[None, :, g] * isum[:, g, None].astype(_F32)) * t
    top = _F32((1 << bits) - 1)
    for r, kk in zip(*np.nonzero(special)):
        g = kk // group_size
        level = _F32(2) * codes[:, kk].astype(_F32) - top
        wv = level * w_s[:, g] + w_z[:, g] if has_zero else level * w_s[:, g]
        y[r] = y[r] + wv * x[r, kk]
    out[...] = y


# ---- two-level (K-quant) weights: csrc/lut/layout.h, serial.h gemv_kq_units -------------------------------------
KQ_FORMATS = {"u8": 0, "nib": 1, "i8": 2, "one": 3}


def kq_scales(sc, mn, fmt: int, has_min: bool):
    """Stored sub-scale bytes [..] -> (sc int64, mn int64) as the kernel reads them."""
    if fmt == 3:
        return np.ones(sc.shape, np.int64), np.full(sc.shape, int(has_min), np.int64)
    if fmt == 2:
        return sc.view(np.int8).astype(np.int64), np.zeros(sc.shape, np.int64)
    if fmt == 1:
        return (sc & 15).astype(np.int64), (sc >> 4).astype(np.int64)
    return sc.astype(np.int64), (mn.astype(np.int64) if has_min else np.zeros(sc.shape, np.int64))


def matmul_kq(x, packed, sc, mn, d, dmin, m, bits, group_size, fmt, sub, zero, has_min, out, threads=-1, units=1,
              cols=1, col_block=32, prefetch=0):
    n, k = x.shape
    n_units, groups, _, _ = layout_sizes(m, k, group_size, bits)
    if fmt not in (0, 1, 2, 3):
        raise ValueError(f"format: expected 0 (u8), 1 (nibbles), 2 (i8) or 3 (one), got {fmt}")
    if sub < 8 or sub > 64 or sub % 8 or group_size % sub:
        raise ValueError(f"sub: expected a multiple of 8 up to 64 dividing group_size {group_size}, got {sub}")
    if not 0 <= zero <= (1 << bits) - 1:
        raise ValueError(f"zero: expected 0..{(1 << bits) - 1} for {bits} bits, got {zero}")
    nsub = group_size // sub
    sub_shape = (n_units, groups, nsub, UNIT_ROWS)
    if fmt == 3:  # no sub-scale bytes: 1-d placeholders, never read
        for name, a in (("sc", sc), ("mn", mn)):
            if a.ndim != 1:
                raise ValueError(f"{name}: expected a 1-d placeholder for the 'one' format, got shape {a.shape}")
        sc = mn = np.zeros(sub_shape, np.uint8)
    for name, a, shape in (("sc", sc, sub_shape), ("mn", mn, sub_shape),
                           ("d", d, (n_units, groups, UNIT_ROWS)), ("dmin", dmin, (n_units, groups, UNIT_ROWS))):
        if a.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    prelude = _prelude(x, packed, m, bits, group_size, out)
    if prelude is None:
        return
    special, qt, ts, _, codes, idx = prelude
    cpg, cps = group_size // 4, sub // 4
    scv, mnv = kq_scales(sc, mn, fmt, has_min)
    scv = scv.transpose(0, 3, 1, 2).reshape(-1, groups, nsub)[:m]  # [M, g, nsub]
    mnv = mnv.transpose(0, 3, 1, 2).reshape(-1, groups, nsub)[:m]
    d_f = d.view(np.float16).astype(_F32).transpose(0, 2, 1).reshape(-1, groups)[:m]
    dm_f = dmin.view(np.float16).astype(_F32).transpose(0, 2, 1).reshape(-1, groups)[:m]
    weights = (1 << np.arange(bits)).astype(np.int64)
    cz = (1 << bits) - 1 - 2 * zero
    y = np.zeros((n, m), _F32)
    chunk = np.arange(cpg)
    for g in range(groups):
        acc = np.zeros((n, m, cpg), np.int64)
        for p in range(bits):
            acc += weights[p] * qt[:, g][:, chunk[None, :], idx[:, g, :, p]].astype(np.int64)  # [N, M, cpg]
        acc_s = acc.reshape(n, m, nsub, cps).sum(axis=3)
        isub = qt[:, g, :, 15].astype(np.int64).reshape(n, nsub, cps).sum(axis=2)  # [N, nsub]
        s_int = (scv[None, :, g] * (acc_s + cz * isub[:, None, :])).sum(axis=2)
        t = ts[:, g, None]
        y = y + (s_int.astype(_F32) * (d_f[None, :, g] * _F32(0.5))) * t
        if has_min:
            mn_int = (mnv[None, :, g] * isub[:, None, :]).sum(axis=2)
            y = y - (mn_int.astype(_F32) * dm_f[None, :, g]) * t
    for r, kk in zip(*np.nonzero(special)):
        g, b = kk // group_size, (kk % group_size) // sub
        wv = (d_f[:, g] * scv[:, g, b].astype(_F32)) * (codes[:, kk].astype(np.int64) - zero).astype(_F32)
        if has_min:
            wv = wv - dm_f[:, g] * mnv[:, g, b].astype(_F32)
        y[r] = y[r] + wv * x[r, kk]
    out[...] = y
