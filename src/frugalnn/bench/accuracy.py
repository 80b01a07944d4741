"""Output error of a kernel or a peer against a reference on the same input: the accuracy half of
every race row (a faster kernel that is less accurate must show it), and the check a benchmark
makes before it times."""
from __future__ import annotations

import numpy as np


def nmse(y, ref) -> float:
    """sum (y - ref)^2 / sum ref^2, in float64 (0 for an exact answer; inf if ref is all zero and y not)."""
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    if y.shape != ref.shape:
        raise ValueError(f"y: expected the reference's shape {ref.shape}, got {y.shape}")
    num, den = float(((y - ref) ** 2).sum()), float((ref**2).sum())
    return num / den if den else (0.0 if num == 0 else float("inf"))


def max_rel_error(y, ref) -> float:
    """max |y - ref| / max |ref| (the scale-free worst case)."""
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    if y.shape != ref.shape:
        raise ValueError(f"y: expected the reference's shape {ref.shape}, got {y.shape}")
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    err = float(np.abs(y - ref).max()) if ref.size else 0.0
    return err / scale if scale else (0.0 if err == 0 else float("inf"))


class CheckFailed(AssertionError):
    """A benchmark case whose output differs from its reference beyond the documented bound."""


def check_before_timing(case: str, impl: str, error: float, bound: float, metric: str = "nmse") -> float:
    """Stop the benchmark (CheckFailed) when `impl`'s output error at the benched shape exceeds
    `bound`, so no figure is ever timed on a wrong answer. Returns `error`."""
    if not np.isfinite(error) or error > bound:
        raise CheckFailed(f"{case}: {impl} output {metric} {error:.3g} exceeds its bound {bound:.3g}; "
                          "not timing a wrong answer")
    return error
