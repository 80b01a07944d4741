"""The second level of the K-quants: integer sub-block scales (and mins) under fp16 super-block scales.

Start as llama.cpp does (quantize_row_q4_K_ref and friends): the largest sub-block scale sets d, every
sub-block scale is rounded to an integer multiple of d (likewise mins under dmin), codes are re-chosen on
the final grid. Then alternate, per super-block, keeping whichever state has the least weighted error:
  1. codes fixed: refit the fp16 super-block scale(s) by weighted least squares over all 256 weights
     (d alone for Q3_K/Q6_K; d and dmin jointly for Q2_K/Q4_K/Q5_K), rounded to fp16;
  2. codes fixed: refit each sub-block's scale/min by least squares, re-round them to integers under d;
  3. re-choose the codes on the new grid.
llama.cpp stops after the first pass; the extra passes are where the two-level rounding loss is won back.
"""
from __future__ import annotations

import numpy as np

from frugalnn.tmac.quantizers._formats import Spec, scale_offset, to_fp16

REFINE_STEPS = 3


def _fp16(a: np.ndarray, what: str) -> np.ndarray:
    return to_fp16(a, what, "super-block")


def _safe_div(a, b):
    ok = b != 0
    return np.where(ok, a / np.where(ok, b, 1.0), 0.0)


def _sums(x3, w3, codes3, sp: Spec):
    """Per-sub-block weighted sums [M, S, P] used by both refits (x3 etc. [M, S, P, B])."""
    lv = codes3 - np.float32(sp.zero) if sp.family == "k_sym" else codes3
    wl = w3 * lv
    return (lv, w3.sum(-1, dtype=np.float64), wl.sum(-1, dtype=np.float64),
            np.einsum("...b,...b->...", wl, lv, dtype=np.float64),
            np.einsum("...b,...b->...", w3, x3, dtype=np.float64),
            np.einsum("...b,...b->...", wl, x3, dtype=np.float64))


def second_level(x: np.ndarray, w: np.ndarray, sp: Spec, s: np.ndarray, o: np.ndarray | None,
                 round_fn) -> dict:
    """x, w [M, K] float32; s (and o) [M, K/block] first-level sub-block fits. -> the type's fields.

    round_fn(x, scale, offset) -> codes [M, K] (nearest on the grid)."""
    m, k = x.shape
    per = sp.superblock // sp.block
    ns = k // sp.superblock
    shape4 = (m, ns, per, sp.block)
    x3, w3 = x.reshape(shape4), w.reshape(shape4)
    s3 = s.reshape(m, ns, per)
    lo, hi = sp.sub_lo, sp.sub_hi
    if sp.family == "k_affine":
        mins = np.maximum(-o.reshape(m, ns, per), 0.0)
        s3 = np.maximum(s3, 0.0)
        d = _fp16(s3.max(-1) / hi, "d")
        dmin = _fp16(mins.max(-1) / hi, "dmin")
        fields = {"d": d, "dmin": dmin,
                  "sc": np.clip(np.rint(_safe_div(s3, d[..., None])), 0, hi).reshape(m, -1).astype(np.uint8),
                  "mn": np.clip(np.rint(_safe_div(mins, dmin[..., None])), 0, hi).reshape(m, -1).astype(np.uint8)}
    else:
        peak = np.take_along_axis(s3, np.abs(s3).argmax(-1)[..., None], -1)[..., 0]
        d = _fp16(peak / lo, "d")  # the largest scale on the long (negative) end, as llama.cpp does
        fields = {"d": d, "sc": np.clip(np.rint(_safe_div(s3, d[..., None])), lo, hi).reshape(m, -1).astype(np.int8)}

    def state_error(f):
        scale, offset = scale_offset(sp, f)
        codes = round_fn(x, scale, offset)
        value = codes.astype(np.float32) * np.repeat(scale, sp.block, 1) + np.repeat(offset, sp.block, 1)
        diff = (value - x).reshape(m, ns, -1)
        return codes, np.einsum("msk,msk->ms", w.reshape(m, ns, -1), diff * diff, dtype=np.float64)

    codes, best_e = state_error(fields)
    best = {key: v.copy() for key, v in fields.items()}
    for _ in range(REFINE_STEPS):
        c3 = codes.reshape(shape4).astype(np.float32)
        lv, sw, sl, sl2, sx, sxl = _sums(x3, w3, c3, sp)
        cur = {key: v.copy() for key, v in best.items()}
        if sp.family == "k_affine":
            # x ~ d * (sc q) - dmin * mn over the super-block: 2x2 normal equations in (d, dmin)
            sc = cur["sc"].reshape(m, ns, per).astype(np.float64)
            mn = cur["mn"].reshape(m, ns, per).astype(np.float64)
            a_aa = (sc * sc * sl2).sum(-1)
            a_ab = (sc * mn * sl).sum(-1)
            a_bb = (mn * mn * sw).sum(-1)
            b_a = (sc * sxl).sum(-1)
            b_b = (mn * sx).sum(-1)
            det = a_aa * a_bb - a_ab * a_ab
            ok = det > 1e-12 * np.maximum(a_aa * a_bb, 1e-300)
            det = np.where(ok, det, 1.0)
            d_new = (b_a * a_bb - a_ab * b_b) / det  # solves [a_aa, -a_ab; -a_ab, a_bb] [d; dmin] = [b_a; -b_b]
            dmin_new = (a_ab * b_a - a_aa * b_b) / det
            ok &= (d_new > 0) & (dmin_new >= 0)
            cur["d"] = np.where(ok, _fp16(np.where(ok, d_new, 0.0), "d"), cur["d"])
            cur["dmin"] = np.where(ok, _fp16(np.where(ok, dmin_new, 0.0), "dmin"), cur["dmin"])
            # per sub-block LS of (scale, min) on the same codes, re-rounded under the new d / dmin
            det2 = sw * sl2 - sl * sl
            ok2 = det2 > 1e-12 * np.maximum(sw * sl2, 1e-300)
            det2 = np.where(ok2, det2, 1.0)
            s_ls = (sw * sxl - sx * sl) / det2
            m_ls = -(sl2 * sx - sl * sxl) / det2
            sc_new = np.clip(np.rint(_safe_div(s_ls, cur["d"][..., None].astype(np.float64))), 0, hi)
            mn_new = np.clip(np.rint(_safe_div(m_ls, cur["dmin"][..., None].astype(np.float64))), 0, hi)
            cur["sc"] = np.where(ok2, sc_new, sc).reshape(m, -1).astype(np.uint8)
            cur["mn"] = np.where(ok2, mn_new, mn).reshape(m, -1).astype(np.uint8)
        else:
            sc = cur["sc"].reshape(m, ns, per).astype(np.float64)
            num, den = (sc * sxl).sum(-1), (sc * sc * sl2).sum(-1)
            ok = den > 0
            cur["d"] = np.where(ok, _fp16(_safe_div(num, den), "d"), cur["d"])
            s_ls = _safe_div(sxl, sl2)
            sc_new = np.clip(np.rint(_safe_div(s_ls, cur["d"][..., None].astype(np.float64))), lo, hi)
            cur["sc"] = np.where(sl2 > 0, sc_new, sc).reshape(m, -1).astype(np.int8)
        codes_new, e = state_error(cur)
        better = e < best_e
        if not better.any():
            break
        for key in best:
            grain = 1 if best[key].shape[1] == ns else per
            best[key] = np.where(np.repeat(better, grain, 1), cur[key], best[key])
        best_e = np.where(better, e, best_e)
        codes = np.where(np.repeat(better, sp.superblock, 1), codes_new, codes)
    return best
