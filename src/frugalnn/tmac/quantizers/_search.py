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


def _dot(a, b):
    """Row sums of a * b: float32 over a block (<= 32 terms), widened for the solves."""
    return np.einsum("nb,nb->n", a, b).astype(np.float64)


def _rowsum(a):
    return np.einsum("nb->n", a).astype(np.float64)  # einsum: ~4x numpy's sum over short rows


def _err(x, w, value):
    d = value - x
    return _rowsum(d * d) if w is None else _dot(w, d * d)


class _Moments:
    """Weighted sums of a block's weights, values and candidate codes (w None: all weights 1, no multiply).
    The error of any (scale s, offset o) on codes l then costs no pass over the block:
    sum w (s l + o - x)^2 = sxx - 2 s sxl - 2 o sx + s^2 sl2 + 2 s o sl + o^2 sw."""

    def __init__(self, x, w):
        self.x, self.w = x, w
        self.sw = np.full(x.shape[0], float(x.shape[1])) if w is None else _rowsum(w)
        self.sx = _rowsum(x) if w is None else _dot(w, x)
        self.sxx = _dot(x, x) if w is None else _dot(w * x, x)

    def codes(self, lv):
        """(sl, sl2, sxl) of levels lv [N, B]."""
        wl = lv if self.w is None else self.w * lv
        return _rowsum(wl), _dot(wl, lv), _dot(wl, self.x)

    def err(self, s, o, sl, sl2, sxl):
        e = self.sxx - 2 * s * sxl - 2 * o * self.sx + s * s * sl2 + 2 * s * o * sl + o * o * self.sw
        return np.maximum(e, 0.0)


def fit_affine(x: np.ndarray, w: np.ndarray | None, nmax: int, *, nonpos_offset: bool = False,
               deltas=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (scale >= 0, offset) [N] float64 of the grid c * scale + offset, c in 0..nmax.

    w: [N, B] non-negative weights of the squared error, or None for plain MSE.
    nonpos_offset: keep offset <= 0 (K-quant mins are stored as unsigned dmin * m, subtracted)."""
    x = np.asarray(x, np.float32)
    w = None if w is None else np.asarray(w, np.float32)
    lo = x.min(axis=1).astype(np.float64)
    hi = x.max(axis=1).astype(np.float64)
    if nonpos_offset:
        lo = np.minimum(lo, 0.0)
    rng = hi - lo
    flat = ~(rng > 0)
    safe = np.where(flat, 1.0, rng)
    mom = _Moments(x, w)
    # the min/max grid: the round-to-nearest baseline every candidate must beat
    base_s, base_o = np.where(flat, 0.0, rng / nmax), lo.copy()
    best_s, best_o, best_e = base_s, base_o, np.full(x.shape[0], np.inf)
    lo32 = lo.astype(np.float32)[:, None]

    def consider(codes, refit=True):
        nonlocal best_s, best_o, best_e
        sl, sl2, sxl = mom.codes(codes)
        if not refit:
            s, o, ok = base_s, base_o, np.ones(len(sl), bool)
        else:
            det = mom.sw * sl2 - sl * sl
            ok = det > 1e-12 * np.maximum(mom.sw * sl2, 1e-300)
            det = np.where(ok, det, 1.0)
            s = (mom.sw * sxl - mom.sx * sl) / det
            o = (sl2 * mom.sx - sl * sxl) / det
            if nonpos_offset:  # the offset wants to be positive: pin it at 0 and refit the scale alone
                pin = o > 0
                s = np.where(pin, sxl / np.where(sl2 > 0, sl2, 1.0), s)
                o = np.where(pin, 0.0, o)
            ok &= (s > 0) & np.isfinite(s) & np.isfinite(o)
            s, o = np.where(ok, s, 0.0), np.where(ok, o, 0.0)
        e = np.where(ok, mom.err(s, o, sl, sl2, sxl), np.inf)
        better = e < best_e
        best_s, best_o, best_e = np.where(better, s, best_s), np.where(better, o, best_o), np.where(better, e, best_e)

    consider(_affine_codes(x, base_s, base_o, nmax), refit=False)
    for delta in AFFINE_DELTAS if deltas is None else deltas:
        iscale = ((nmax + delta) / safe).astype(np.float32)[:, None]
        consider(np.clip(np.rint((x - lo32) * iscale), 0, nmax))
    for _ in range(LLOYD_STEPS):
        consider(_affine_codes(x, best_s, best_o, nmax))
    # the guarantee, on errors summed directly (the moments' expansion can be off by float32 rounding)
    worse = _err(x, w, _affine_value(x, best_s, best_o, nmax)) > _err(x, w, _affine_value(x, base_s, base_o, nmax))
    best_s, best_o = np.where(worse | flat, base_s, best_s), np.where(worse | flat, base_o, best_o)
    return best_s, best_o


def _affine_codes(x, s, o, nmax):
    inv = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0).astype(np.float32)[:, None]
    return np.clip(np.rint((x - o.astype(np.float32)[:, None]) * inv), 0, nmax)


def _affine_value(x, s, o, nmax):
    return _affine_codes(x, s, o, nmax) * s.astype(np.float32)[:, None] + o.astype(np.float32)[:, None]


def fit_symmetric(x: np.ndarray, w: np.ndarray | None, levels: int, zero: float, *,
                  deltas=None) -> np.ndarray:
    """Per-row signed scale [N] float64 of the grid (c - zero) * scale, c in 0..levels-1.

    The sign matters when the levels are lopsided (Q3_K: -4..3): both ends are tried for the
    largest-magnitude weight, as the search is cheap."""
    x = np.asarray(x, np.float32)
    w = None if w is None else np.asarray(w, np.float32)
    n = x.shape[0]
    peak = x[np.arange(n), np.abs(x).argmax(axis=1)].astype(np.float64) if x.shape[1] else np.zeros(n)
    flat = peak == 0
    safe = np.where(flat, 1.0, peak)
    top = levels - 1 - zero
    mom = _Moments(x, w)
    # llama.cpp's: the peak on the long (negative) end; zero == 0 (codes 0..levels-1 times s): the top end
    base = np.where(flat, 0.0, -safe / zero if zero else safe / top)
    best_s, best_e = base, np.full(n, np.inf)

    def consider(codes, refit=True):
        nonlocal best_s, best_e
        sl, sl2, sxl = mom.codes(codes - np.float32(zero))
        if refit:
            ok = sl2 > 0
            s = np.where(ok, sxl / np.where(ok, sl2, 1.0), 0.0)
            ok &= s != 0
        else:
            s, ok = base, np.ones(n, bool)
        e = np.where(ok, mom.err(s, 0.0, sl, sl2, sxl), np.inf)
        better = e < best_e
        best_s, best_e = np.where(better, s, best_s), np.where(better, e, best_e)

    consider(_sym_codes(x, base, levels, zero), refit=False)
    ends = ([(-1.0, zero)] if zero else []) + ([(1.0, top)] if top != zero else [])
    for sign, room in ends:
        for delta in SYMMETRIC_DELTAS if deltas is None else deltas:
            if room + delta <= 0:
                continue
            consider(_sym_codes(x, sign * safe / (room + delta), levels, zero))
    for _ in range(LLOYD_STEPS):
        consider(_sym_codes(x, best_s, levels, zero))
    worse = _err(x, w, _sym_value(x, best_s, levels, zero)) > _err(x, w, _sym_value(x, base, levels, zero))
    return np.where(flat, 0.0, np.where(worse, base, best_s))


def _sym_codes(x, s, levels, zero):
    inv = np.where(s != 0, 1.0 / np.where(s != 0, s, 1.0), 0.0).astype(np.float32)[:, None]
    return np.clip(np.rint(x * inv + np.float32(zero)), 0, levels - 1)


def _sym_value(x, s, levels, zero):
    return (_sym_codes(x, s, levels, zero) - np.float32(zero)) * s.astype(np.float32)[:, None]
