"""How the scaling experiment's measurements are held against the paper: the statistics (exponent
fits, Pearson r with a bootstrap interval) and the verdict rules, as pure functions so that each
rule can be fed a failing value in a test.

Claims and rules:
- growth exponents: a strategy matches when its fitted params and acts exponents are both within
  TOLERANCE of the one-stage theory; all strategies -> reproduced, none -> not reproduced, else partly;
- runtime: per (base, mode), r(acts) beats r(flops) only when the lower end of the paired bootstrap
  interval of r(acts) - r(flops) is above 0 (the point estimates of ~25 models are too noisy alone);
  the headline combines the cases: all -> reproduced, none -> not reproduced, else partly;
- counting: profile() equals the closed-form complexity() on every model, exactly.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from frugalnn.report.verdicts import combine, holds

TOLERANCE = 0.05   # |fitted exponent - theory| accepted: rounding to multiples of 8/4 moves the fits by ~0.01-0.03
CONFIDENCE = 0.90  # two-sided bootstrap interval of r(acts) - r(flops)
BOOTSTRAP = 2000
PREDICTORS = {"flops": "macs", "params": "params", "acts": "acts", "layers": "mac_ops"}


def fit_exponent(x_ratios, y_ratios) -> float:
    """Least-squares slope through the origin of log(y) against log(x) (the base is the origin)."""
    x, y = np.log(np.asarray(x_ratios, float)), np.log(np.asarray(y_ratios, float))
    return float(np.dot(x, y) / np.dot(x, x))


def pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _finite(value, name: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def exponents_match(fitted: Mapping[str, float], theory: Mapping[str, float], tolerance: float = TOLERANCE) -> bool:
    """Both the params and the acts exponent within `tolerance` of theory (ValueError on a NaN fit)."""
    return all(abs(_finite(fitted[k], f"fitted {k} exponent") - theory[k]) <= tolerance for k in ("params", "acts"))


def exponents_verdict(matches: Mapping[str, bool], tolerance: float = TOLERANCE) -> dict:
    """One base: {strategy: both exponents within tolerance} -> all reproduced / none not / else partly."""
    if not matches:
        raise ValueError("matches: expected at least one strategy")
    parts = [holds(bool(ok), f"{strategy} within {tolerance}") for strategy, ok in matches.items()]
    return combine(parts, f"reproduced if every strategy's params and acts exponents are within {tolerance} of "
                          f"theory, not reproduced if none are, else partly")


def compare_predictors(times, variants: Sequence[Mapping], seed: int) -> dict:
    """Pearson r of runtime against each predictor, and a paired bootstrap (over the models) of
    r(acts) - r(flops): with ~25 models, r itself is uncertain, so a 'better' needs the interval."""
    t = np.asarray(times, float)
    values = {name: np.asarray([v[key] for v in variants], float) for name, key in PREDICTORS.items()}
    r = {name: pearson(t, x) for name, x in values.items()}
    rng = np.random.default_rng(seed)
    n = len(t)
    diffs = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, n, n)
        diff = pearson(t[idx], values["acts"][idx]) - pearson(t[idx], values["flops"][idx])
        if not np.isnan(diff):  # a resample of identical models has no correlation to compare
            diffs.append(diff)
    if not diffs:
        raise ValueError(f"times: no bootstrap resample of the {n} models has a defined correlation")
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = (float(q) for q in np.percentile(diffs, [tail, 100 - tail]))
    if lo > 0:
        winner = "acts (significant)"
    elif hi < 0:
        winner = "flops (significant)"
    else:
        winner = f"no significant difference ({'acts' if r['acts'] > r['flops'] else 'flops'} ahead)"
    return {"r": r, "diff": r["acts"] - r["flops"], "ci": (lo, hi), "winner": winner,
            **correlation_verdict(lo)}


def correlation_verdict(ci_low: float) -> dict:
    """Runtime tracks acts better than flops: the interval of r(acts) - r(flops) lies above 0."""
    lo = _finite(ci_low, "ci_low")
    return holds(lo > 0, f"reproduced if the {CONFIDENCE:.0%} bootstrap interval of r(acts) - r(flops) "
                         f"lies above 0 (lower end {lo:+.3f}), else not reproduced")


def runtime_claim_verdict(cases: Sequence[Mapping]) -> dict:
    """The headline: the per-(base, mode) correlation verdicts combined."""
    return combine(list(cases), f"reproduced if r(acts) is significantly above r(flops) in all {len(cases)} "
                                "(base, mode) cases, not reproduced if in none, else partly")


def closed_form_verdict(matching: int, total: int) -> dict:
    """Every model's profile() counts equal its closed-form complexity() (exact integers)."""
    if not 0 <= matching <= total:
        raise ValueError(f"matching: expected 0 <= matching <= total ({total}), got {matching}")
    return holds(matching == total, f"reproduced if all {total} models match exactly (MACs, params, acts), "
                                    "else not reproduced")
