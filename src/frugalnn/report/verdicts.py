"""Verdict rules: how a measured figure is held against a paper's claim.

Every rule can fail: it returns NOT_REPRODUCED below its lower threshold, and states its thresholds
in the `rule` text that goes into the report row. Where a claim is a saving or a speed-up, pass the
saving or the speed-up itself (a 0.864 energy ratio is a 13.6% saving, not "within 10% of 0.79").

    Row(..., paper=6.7, measured=speedup, **at_least(speedup, 6.7))   # verdict=..., rule=...
"""
from __future__ import annotations

import math

import numpy as np

REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
NOT_REPRODUCED = "not reproduced"
DERIVED = "derived"     # arithmetic on the paper's own inputs: not a measurement
MEASURED = "measured"   # a figure with no claim to hold it against
NOT_MEASURED = "not measured"  # a peer or input that was absent or failed: the row stays, with the reason
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, DERIVED, MEASURED, NOT_MEASURED)
CLAIM_VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED)  # these need a rule


def _finite(value, name: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def _judged(verdict: str, rule: str) -> dict:
    return {"verdict": verdict, "rule": rule}


def at_least(measured, claimed, full: float = 0.9, partly: float = 0.5) -> dict:
    """For "bigger is the claim" figures (speed-ups, savings): reproduced at >= full x claimed,
    partly at >= partly x claimed, else not reproduced."""
    m, c = _finite(measured, "measured"), _finite(claimed, "claimed")
    if c <= 0 or not 0 < partly <= full:
        raise ValueError(f"at_least: expected claimed > 0 and 0 < partly <= full, got {c}, {partly}, {full}")
    rule = f">= {full:g} x claim ({full * c:.4g}) reproduced; >= {partly:g} x ({partly * c:.4g}) partly"
    return _judged(REPRODUCED if m >= full * c else PARTLY if m >= partly * c else NOT_REPRODUCED, rule)


def at_most(measured, bound, partly: float | None = None) -> dict:
    """For errors and costs: reproduced at <= bound, partly at <= partly (a looser bound), else not."""
    m, b = _finite(measured, "measured"), _finite(bound, "bound")
    rule = f"<= {b:.4g} reproduced" + (f"; <= {partly:.4g} partly" if partly is not None else "")
    if m <= b:
        return _judged(REPRODUCED, rule)
    return _judged(PARTLY if partly is not None and m <= partly else NOT_REPRODUCED, rule)


def within(measured, claimed, rel: float = 0.1, partly_rel: float | None = None) -> dict:
    """For figures that should equal the claim: |measured - claimed| <= rel x |claimed| reproduced,
    <= partly_rel x |claimed| partly, else not reproduced."""
    m, c = _finite(measured, "measured"), _finite(claimed, "claimed")
    dev = abs(m - c) / abs(c) if c else abs(m)
    rule = f"within {rel:.0%} of the claim reproduced" + (f"; within {partly_rel:.0%} partly" if partly_rel else "")
    if dev <= rel:
        return _judged(REPRODUCED, rule)
    return _judged(PARTLY if partly_rel is not None and dev <= partly_rel else NOT_REPRODUCED, rule)


def equals(measured, claimed) -> dict:
    """Exact claims (pass counts, exact counts): equal reproduced, else not."""
    return _judged(REPRODUCED if measured == claimed else NOT_REPRODUCED, f"== {claimed!r}")


def holds(ok: bool, rule: str) -> dict:
    """A yes/no claim tested by the caller; `rule` says what was tested."""
    if not isinstance(ok, (bool, np.bool_)):
        raise TypeError(f"ok: expected a bool, got {type(ok).__name__}")
    return _judged(REPRODUCED if ok else NOT_REPRODUCED, rule)


def combine(parts: list[dict], rule: str) -> dict:
    """Several sub-claims: all reproduced -> reproduced, none -> not reproduced, else partly."""
    if not parts:
        raise ValueError("combine: expected at least one verdict")
    ok = [p["verdict"] == REPRODUCED for p in parts]
    none = all(p["verdict"] == NOT_REPRODUCED for p in parts)
    return _judged(REPRODUCED if all(ok) else NOT_REPRODUCED if none else PARTLY, rule)


def derived(what: str = "arithmetic on the paper's inputs") -> dict:
    """A figure computed from the paper's own constants: shown, never counted as reproduced."""
    return _judged(DERIVED, what)


def measured(note: str = "") -> dict:
    return _judged(MEASURED, note)


def not_measured(reason: str) -> dict:
    """For a row whose figure could not be taken (peer absent or failed): pass measured=None."""
    if not reason:
        raise ValueError("reason: say why the figure was not measured")
    return _judged(NOT_MEASURED, reason)
