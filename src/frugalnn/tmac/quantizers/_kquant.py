"""The second level of the K-quants: integer sub-block scales (and mins) under fp16 super-block scales.

llama.cpp's reference (quantize_row_q4_K_ref and friends) lets the largest sub-block scale set d and rounds
every sub-block scale to an integer multiple of it. Here the sub-block scales are themselves quantized like
weights, by the same candidate search (_search.fit_symmetric): the "weights" of a super-block are its
sub-block scales, and each one's error weight is what a scale error costs in squared weight error,
sum w q^2 over its sub-block (sum w for a min) -- the idea of llama.cpp's imatrix path (make_qp_quants).
Then, per super-block, alternate and keep whichever state has the least weighted error:
  A. codes fixed: refit each sub-block's scale/min by least squares, quantize them again as above;
  B. codes fixed: refit the fp16 super-block scale(s) by least squares over all 256 weights (d alone for
     Q3_K/Q6_K; d and dmin jointly for Q2_K/Q4_K/Q5_K) with the integer sub-scales kept;
and re-choose the codes on each new grid.
"""
from __future__ import annotations

import numpy as np

from frugalnn.tmac.quantizers import _search
from frugalnn.tmac.quantizers._formats import Spec, scale_offset, to_fp16

REFINE_STEPS = 3


def _fp16(a: np.ndarray, what: str) -> np.ndarray:
    return to_fp16(a, what, "super-block")


def _safe_div(a, b):
    ok = b != 0
    return np.where(ok, a / np.where(ok, b, 1.0), 0.0)


def _dot(a, b):
    return np.einsum("...b,...b->...", a, b).astype(np.float64)  # float32 over one sub-block


def _sums(x3, w3, codes3, sp: Spec):
    """Per-sub-block weighted sums [M, S, P] (x3 etc. [M, S, P, B]; w3 None: weights 1):
    sw, sl, sl2, sx, sxl of the levels (codes, minus the zero code for Q3_K/Q6_K)."""
    lv = codes3 - np.float32(sp.zero) if sp.family == "k_sym" else codes3
    wl = lv if w3 is None else w3 * lv
    sw = np.full(x3.shape[:-1], float(x3.shape[-1])) if w3 is None else np.einsum("...b->...", w3).astype(np.float64)
    sx = np.einsum("...b->...", x3).astype(np.float64) if w3 is None else _dot(w3, x3)
    return sw, np.einsum("...b->...", wl).astype(np.float64), _dot(wl, lv), sx, _dot(wl, x3)


def _subscales(vals: np.ndarray, weight: np.ndarray, sp: Spec, what: str):
    """Sub-block values [M, S, P] -> (fp16 super-block scale [M, S], integer sub-scales [M, S, P])
    minimizing sum weight * (val - d * int)^2 over the type's integer range."""
    m, ns, per = vals.shape
    lo, hi = sp.sub_lo, sp.sub_hi
    flat, wflat = vals.reshape(-1, per), np.maximum(weight, 0).reshape(-1, per)
    if lo < 0:  # signed integers lo..hi are codes 0..hi-lo around zero code -lo
        d = _search.fit_symmetric(flat, wflat, hi - lo + 1, -lo)
    else:
        d = _search.fit_symmetric(flat, wflat, hi + 1, 0)
    d = _fp16(d.reshape(m, ns), what)
    ints = np.clip(np.rint(_safe_div(vals, d[..., None].astype(np.float64))), lo, hi)
    return d, ints


def _quantize_state(s3, m3, sums, sp: Spec) -> dict:
    sw, _, sl2, _, _ = sums
    m = s3.shape[0]
    d, sc = _subscales(s3, sl2, sp, "d")
    if sp.family == "k_sym":
        return {"d": d, "sc": sc.reshape(m, -1).astype(np.int8)}
    dmin, mn = _subscales(m3, sw, sp, "dmin")
    return {"d": d, "dmin": dmin, "sc": sc.reshape(m, -1).astype(np.uint8), "mn": mn.reshape(m, -1).astype(np.uint8)}


def _block_ls(sums, sp: Spec):
    """Per-sub-block least-squares (scale, min >= 0) on fixed codes; None min for the symmetric types."""
    sw, sl, sl2, sx, sxl = sums
    if sp.family == "k_sym":
        return _safe_div(sxl, sl2), None
    det = sw * sl2 - sl * sl
    ok = det > 1e-12 * np.maximum(sw * sl2, 1e-300)
    det = np.where(ok, det, 1.0)
    s = np.where(ok, (sw * sxl - sx * sl) / det, _safe_div(sxl, sl2))
    mins = np.where(ok, -(sl2 * sx - sl * sxl) / det, 0.0)
    return np.maximum(s, 0.0), np.maximum(mins, 0.0)


def _super_ls(best: dict, sums, sp: Spec, m: int, ns: int, per: int) -> dict:
    """Refit the fp16 super-block scale(s) by least squares with codes and integer sub-scales fixed."""
    sw, sl, sl2, sx, sxl = sums
    cur = {key: v.copy() for key, v in best.items()}
    sc = best["sc"].reshape(m, ns, per).astype(np.float64)
    if sp.family == "k_sym":
        num, den = (sc * sxl).sum(-1), (sc * sc * sl2).sum(-1)
        ok = den > 0
        cur["d"] = np.where(ok, _fp16(_safe_div(num, den), "d"), best["d"])
        return cur
    # x ~ d * (sc q) - dmin * mn: normal equations [a_aa, -a_ab; a_ab, -a_bb] [d; dmin] = [b_a; b_b]
    mn = best["mn"].reshape(m, ns, per).astype(np.float64)
    a_aa, a_ab, a_bb = (sc * sc * sl2).sum(-1), (sc * mn * sl).sum(-1), (mn * mn * sw).sum(-1)
    b_a, b_b = (sc * sxl).sum(-1), (mn * sx).sum(-1)
    det = a_aa * a_bb - a_ab * a_ab
    ok = det > 1e-12 * np.maximum(a_aa * a_bb, 1e-300)
    det = np.where(ok, det, 1.0)
    d_new = (b_a * a_bb - a_ab * b_b) / det
    dmin_new = (a_ab * b_a - a_aa * b_b) / det
    ok &= (d_new > 0) & (dmin_new >= 0)
    cur["d"] = np.where(ok, _fp16(np.where(ok, d_new, 0.0), "d"), best["d"])
    cur["dmin"] = np.where(ok, _fp16(np.where(ok, dmin_new, 0.0), "dmin"), best["dmin"])
    return cur


def second_level(x: np.ndarray, w: np.ndarray | None, sp: Spec, s: np.ndarray, o: np.ndarray | None,
                 round_fn) -> dict:
    """x [M, K] float32, w [M, K] float32 or None (plain MSE); s (and o) [M, K/block]: the first-level
    sub-block fits (w ~ c s + o). -> the type's stored fields. round_fn(x, scale, offset) -> codes [M, K]."""
    m, k = x.shape
    per = sp.superblock // sp.block
    ns = k // sp.superblock
    shape4 = (m, ns, per, sp.block)
    x3, w3 = x.reshape(shape4), None if w is None else w.reshape(shape4)

    def sums_of(codes):
        return _sums(x3, w3, codes.reshape(shape4).astype(np.float32), sp)

    def state_error(f):
        scale, offset = scale_offset(sp, f)
        codes = round_fn(x, scale, offset)
        value = codes.astype(np.float32) * np.repeat(scale, sp.block, 1) + np.repeat(offset, sp.block, 1)
        sq = np.square(value - x).reshape(m, ns, -1)
        e = np.einsum("msk->ms", sq) if w is None else np.einsum("msk,msk->ms", w.reshape(m, ns, -1), sq)
        return codes, e.astype(np.float64)

    if sp.family == "k_sym":
        first = round_fn(x, s, s * -sp.zero)
        s3, m3 = s.reshape(m, ns, per), None
    else:
        first = round_fn(x, s, o)
        s3, m3 = np.maximum(s, 0.0).reshape(m, ns, per), np.maximum(-o, 0.0).reshape(m, ns, per)
    best = _quantize_state(s3, m3, sums_of(first), sp)
    codes, best_e = state_error(best)
    for _ in range(REFINE_STEPS):
        sums = sums_of(codes)
        improved = False
        for cand in (_quantize_state(*_block_ls(sums, sp), sums, sp), _super_ls(best, sums, sp, m, ns, per)):
            codes_new, e = state_error(cand)
            better = e < best_e
            if not better.any():
                continue
            improved = True
            for key in best:
                grain = 1 if best[key].shape[1] == ns else per
                best[key] = np.where(np.repeat(better, grain, 1), cand[key], best[key])
            best_e = np.where(better, e, best_e)
            codes = np.where(np.repeat(better, sp.superblock, 1), codes_new, codes)
        if not improved:
            break
    return best
