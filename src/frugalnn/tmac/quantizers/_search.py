"""Per-block scale/offset searches minimizing the weighted squared error (the first level of every fit).

Blocks are rows of x [N, B] with non-negative weights w [N, B]. Two grids:
- affine:    value = c * s + o,        c in 0..nmax           (Q4_1, Q5_1, K-quant sub-blocks with mins, asym LUT)
- symmetric: value = (c - z) * s,      c in 0..levels-1       (Q4_0, Q5_0, Q8_0, Q3_K, Q6_K, sym LUT: z = (levels-1)/2)

Both follow llama.cpp's idea (make_qkx2_quants / make_qx_quants in ggml-quants.c): try a set of candidate
scales around the min/max one, let each candidate choose codes by rounding, refit scale (and offset) to those
codes by weighted least squares, keep the candidate with the least weighted error. Two Lloyd steps (re-round
on the refitted grid, refit) finish. The min/max grid itself is always a candidate, so the result is never
worse than round-to-nearest on min/max -- on the weighted error the search measures.
All candidates are evaluated for all blocks at once (numpy over N); errors are summed directly, not through
an expanded quadratic, so near-lossless types (Q8_0) are not decided by cancellation noise.
"""
from __future__ import annotations

import numpy as np

# Candidate offsets of the rounding scale, in steps of the largest code (llama.cpp uses 0.1-code steps too:
# -1 .. +1 around nmax for Q4_K, -0.9 .. +0.9 around nmax for Q6_K).
AFFINE_DELTAS = np.round(np.arange(-1.0, 1.01, 0.1), 2)
SYMMETRIC_DELTAS = np.round(np.arange(-0.9, 0.91, 0.1), 2)
LLOYD_STEPS = 2


def _err(x, w, value):
    d = value - x
    return np.einsum("nb,nb->n", w, d * d, dtype=np.float64)


def fit_affine(x: np.ndarray, w: np.ndarray, nmax: int, *, nonpos_offset: bool = False,
               deltas=AFFINE_DELTAS) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (scale >= 0, offset) [N] float64 of the grid c * scale + offset, c in 0..nmax.

    nonpos_offset: keep offset <= 0 (K-quant mins are stored as unsigned dmin * m, subtracted)."""
    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    lo = x.min(axis=1).astype(np.float64)
    hi = x.max(axis=1).astype(np.float64)
    if nonpos_offset:
        lo = np.minimum(lo, 0.0)
    rng = hi - lo
    flat = ~(rng > 0)
    safe = np.where(flat, 1.0, rng)
    # the min/max grid: the round-to-nearest baseline every candidate must beat
    best_s, best_o = np.where(flat, 0.0, rng / nmax), lo.copy()
    best_e = _err(x, w, _affine_value(x, best_s, best_o, nmax))
    sw = w.sum(axis=1, dtype=np.float64)
    sx = np.einsum("nb,nb->n", w, x, dtype=np.float64)
    lo32 = lo.astype(np.float32)[:, None]

    def consider(codes):
        nonlocal best_s, best_o, best_e
        wl = w * codes
        sl = wl.sum(axis=1, dtype=np.float64)
        sl2 = np.einsum("nb,nb->n", wl, codes, dtype=np.float64)
        sxl = np.einsum("nb,nb->n", wl, x, dtype=np.float64)
        det = sw * sl2 - sl * sl
        ok = det > 1e-12 * np.maximum(sw * sl2, 1e-300)
        det = np.where(ok, det, 1.0)
        s = (sw * sxl - sx * sl) / det
        o = (sl2 * sx - sl * sxl) / det
        if nonpos_offset:  # the offset wants to be positive: pin it at 0 and refit the scale alone
            pin = o > 0
            s = np.where(pin, sxl / np.where(sl2 > 0, sl2, 1.0), s)
            o = np.where(pin, 0.0, o)
        ok &= (s > 0) & np.isfinite(s) & np.isfinite(o)
        s, o = np.where(ok, s, 0.0), np.where(ok, o, 0.0)
        value = codes * s.astype(np.float32)[:, None] + o.astype(np.float32)[:, None]
        e = np.where(ok, _err(x, w, value), np.inf)
        better = e < best_e
        best_s, best_o, best_e = np.where(better, s, best_s), np.where(better, o, best_o), np.where(better, e, best_e)

    for delta in deltas:
        iscale = ((nmax + delta) / safe).astype(np.float32)[:, None]
        consider(np.clip(np.rint((x - lo32) * iscale), 0, nmax))
    for _ in range(LLOYD_STEPS):
        consider(_affine_codes(x, best_s, best_o, nmax))
    best_s = np.where(flat, 0.0, best_s)
    best_o = np.where(flat, lo, best_o)
    return best_s, best_o


def _affine_codes(x, s, o, nmax):
    inv = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0).astype(np.float32)[:, None]
    return np.clip(np.rint((x - o.astype(np.float32)[:, None]) * inv), 0, nmax)


def _affine_value(x, s, o, nmax):
    return _affine_codes(x, s, o, nmax) * s.astype(np.float32)[:, None] + o.astype(np.float32)[:, None]


def fit_symmetric(x: np.ndarray, w: np.ndarray, levels: int, zero: float, *,
                  deltas=SYMMETRIC_DELTAS) -> np.ndarray:
    """Per-row signed scale [N] float64 of the grid (c - zero) * scale, c in 0..levels-1.

    The sign matters when the levels are lopsided (Q3_K: -4..3): both ends are tried for the
    largest-magnitude weight, as the search is cheap."""
    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    n = x.shape[0]
    peak = x[np.arange(n), np.abs(x).argmax(axis=1)].astype(np.float64) if x.shape[1] else np.zeros(n)
    flat = peak == 0
    safe = np.where(flat, 1.0, peak)
    top = levels - 1 - zero
    best_s = np.where(flat, 0.0, -safe / zero)  # llama.cpp's: the peak on the long (negative) end
    best_e = _err(x, w, _sym_value(x, best_s, levels, zero))

    def consider(codes):
        nonlocal best_s, best_e
        lv = codes - np.float32(zero)
        wl = w * lv
        sl2 = np.einsum("nb,nb->n", wl, lv, dtype=np.float64)
        sxl = np.einsum("nb,nb->n", wl, x, dtype=np.float64)
        ok = sl2 > 0
        s = np.where(ok, sxl / np.where(ok, sl2, 1.0), 0.0)
        ok &= s != 0
        e = np.where(ok, _err(x, w, lv * s.astype(np.float32)[:, None]), np.inf)
        better = e < best_e
        best_s, best_e = np.where(better, s, best_s), np.where(better, e, best_e)

    ends = [(-1.0, zero)] + ([(1.0, top)] if top != zero else [])
    for sign, room in ends:
        for delta in deltas:
            if room + delta <= 0:
                continue
            s = sign * safe / (room + delta)
            consider(_sym_codes(x, s, levels, zero))
    for _ in range(LLOYD_STEPS):
        consider(_sym_codes(x, best_s, levels, zero))
    return np.where(flat, 0.0, best_s)


def _sym_codes(x, s, levels, zero):
    inv = np.where(s != 0, 1.0 / np.where(s != 0, s, 1.0), 0.0).astype(np.float32)[:, None]
    return np.clip(np.rint(x * inv + np.float32(zero)), 0, levels - 1)


def _sym_value(x, s, levels, zero):
    return (_sym_codes(x, s, levels, zero) - np.float32(zero)) * s.astype(np.float32)[:, None]
