"""Verification metrics on trial scores: EER and minDCF (NIST SRE convention, C_miss = C_fa = 1)."""
from __future__ import annotations

import numpy as np


def _rates(scores, labels):
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores/labels: expected equal 1-d shapes, got {scores.shape} and {labels.shape}")
    n_t, n_n = int(labels.sum()), int((~labels).sum())
    if n_t == 0 or n_n == 0:
        raise ValueError(f"labels: need target and non-target trials, got {n_t} targets and {n_n} non-targets")
    order = np.argsort(scores, kind="mergesort")
    lab = labels[order]
    # threshold just above the i-th lowest score: misses = targets at or below it
    fnr = np.concatenate([[0.0], np.cumsum(lab) / n_t])
    fpr = np.concatenate([[1.0], 1.0 - np.cumsum(~lab) / n_n])
    return fnr, fpr


def eer(scores, labels) -> float:
    """Equal error rate in % (the crossing of miss and false-alarm rates, linearly interpolated)."""
    fnr, fpr = _rates(scores, labels)
    i = int(np.argmax(fnr >= fpr))
    if i == 0:
        return 100.0 * fnr[0]
    # interpolate between i-1 and i
    d0, d1 = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]
    w = d0 / (d0 - d1) if d0 != d1 else 0.0
    return 100.0 * float(fnr[i - 1] + w * (fnr[i] - fnr[i - 1]))


def min_dcf(scores, labels, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Minimum normalized detection cost over thresholds."""
    if not 0 < p_target < 1:
        raise ValueError(f"p_target: expected in (0, 1), got {p_target}")
    fnr, fpr = _rates(scores, labels)
    dcf = c_miss * p_target * fnr + c_fa * (1 - p_target) * fpr
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


def cosine_scores(emb: np.ndarray, trials) -> np.ndarray:
    """emb: (n, d) embeddings; trials: (i, j, target) rows -> cosine similarity of each pair."""
    e = np.asarray(emb, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    t = np.asarray(trials)
    return np.sum(e[t[:, 0]] * e[t[:, 1]], axis=1)
