"""The scaling verdict rules: each fed a passing and a failing value (every rule can say 'not reproduced')."""
import numpy as np
import pytest

from frugalnn.report import NOT_REPRODUCED, PARTLY, REPRODUCED
from frugalnn.scaling import claims


def test_fit_exponent_recovers_a_power_law():
    s = np.array([2.0, 4.0, 8.0])
    assert claims.fit_exponent(s, s ** 0.6) == pytest.approx(0.6)
    assert claims.fit_exponent(s, np.ones(3)) == pytest.approx(0.0)


def test_exponents_match_within_the_tolerance_only():
    theory = {"params": 0.9, "acts": 0.6}
    assert claims.exponents_match({"params": 0.9 + 0.049, "acts": 0.6 - 0.049}, theory)
    assert not claims.exponents_match({"params": 0.9, "acts": 0.6 + 0.051}, theory)
    assert not claims.exponents_match({"params": 0.9 - 0.051, "acts": 0.6}, theory)
    with pytest.raises(ValueError, match="fitted params exponent"):
        claims.exponents_match({"params": float("nan"), "acts": 0.6}, theory)


def test_exponents_verdict_all_some_none():
    assert claims.exponents_verdict({"d": True, "w": True})["verdict"] == REPRODUCED
    assert claims.exponents_verdict({"d": True, "w": False})["verdict"] == PARTLY
    failed = claims.exponents_verdict({"d": False, "w": False})
    assert failed["verdict"] == NOT_REPRODUCED and str(claims.TOLERANCE) in failed["rule"]
    with pytest.raises(ValueError, match="matches"):
        claims.exponents_verdict({})


def test_correlation_verdict_needs_the_interval_above_zero():
    assert claims.correlation_verdict(0.01)["verdict"] == REPRODUCED
    for lo in (0.0, -0.2):
        judged = claims.correlation_verdict(lo)
        assert judged["verdict"] == NOT_REPRODUCED and "90% bootstrap interval" in judged["rule"]
    with pytest.raises(ValueError, match="ci_low"):
        claims.correlation_verdict(float("nan"))


def test_runtime_claim_combines_the_cases():
    yes, no = claims.correlation_verdict(0.1), claims.correlation_verdict(-0.1)
    assert claims.runtime_claim_verdict([yes, yes])["verdict"] == REPRODUCED
    assert claims.runtime_claim_verdict([yes, no, no, no])["verdict"] == PARTLY
    assert claims.runtime_claim_verdict([no, no, no, no])["verdict"] == NOT_REPRODUCED


def test_closed_form_verdict_is_exact():
    assert claims.closed_form_verdict(50, 50)["verdict"] == REPRODUCED
    assert claims.closed_form_verdict(49, 50)["verdict"] == NOT_REPRODUCED
    assert claims.closed_form_verdict(0, 50)["verdict"] == NOT_REPRODUCED
    with pytest.raises(ValueError, match="matching"):
        claims.closed_form_verdict(51, 50)


def test_compare_predictors_verdicts():
    rng = np.random.default_rng(0)
    acts = rng.uniform(1, 10, 30)
    flops = rng.uniform(1, 10, 30)
    variants = [{"macs": f, "params": f, "acts": a, "mac_ops": 1 + i % 3} for i, (f, a) in enumerate(zip(flops, acts))]
    follows_acts = claims.compare_predictors(2 * acts + rng.normal(0, 0.1, 30), variants, seed=0)
    assert follows_acts["verdict"] == REPRODUCED and follows_acts["winner"] == "acts (significant)"
    follows_flops = claims.compare_predictors(3 * flops, variants, seed=0)
    assert follows_flops["verdict"] == NOT_REPRODUCED and follows_flops["winner"] == "flops (significant)"
    both = claims.compare_predictors(acts + flops, variants, seed=0)
    assert both["ci"][0] < 0 < both["ci"][1] and both["verdict"] == NOT_REPRODUCED
    assert both == claims.compare_predictors(acts + flops, variants, seed=0)  # seeded: repeatable
    assert both["rule"]
