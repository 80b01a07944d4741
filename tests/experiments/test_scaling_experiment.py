"""The scaling experiment end to end on tiny settings (the real quick mode takes minutes)."""
import numpy as np
import pytest

from frugalnn.experiments import scaling
from frugalnn.report import NOT_REPRODUCED, REPRODUCED, Context


def test_fit_exponent_recovers_a_power_law():
    s = np.array([2.0, 4.0, 8.0])
    assert scaling.fit_exponent(s, s ** 0.6) == pytest.approx(0.6)
    assert scaling.fit_exponent(s, np.ones(3)) == pytest.approx(0.0)


def test_compare_predictors_verdicts():
    rng = np.random.default_rng(0)
    acts = rng.uniform(1, 10, 30)
    flops = rng.uniform(1, 10, 30)
    variants = [{"macs": f, "params": f, "acts": a, "mac_ops": 1 + i % 3} for i, (f, a) in enumerate(zip(flops, acts))]
    follows_acts = scaling.compare_predictors(2 * acts + rng.normal(0, 0.1, 30), variants, seed=0)
    assert follows_acts["verdict"] == REPRODUCED and follows_acts["winner"] == "acts (significant)"
    follows_flops = scaling.compare_predictors(3 * flops, variants, seed=0)
    assert follows_flops["verdict"] == NOT_REPRODUCED and follows_flops["winner"] == "flops (significant)"
    both = scaling.compare_predictors(acts + flops, variants, seed=0)
    assert both["ci"][0] < 0 < both["ci"][1] and both["verdict"] == NOT_REPRODUCED
    assert both == scaling.compare_predictors(acts + flops, variants, seed=0)  # seeded: repeatable


def test_experiment_runs_on_tiny_settings(monkeypatch):
    monkeypatch.setattr(scaling, "settings",
                        lambda quick: {"resolution": 32, "factors": (2,), "rounds": 1, "warmup": 0, "batch": 2})
    result = scaling.scaling(Context(quick=True))
    metrics = [r.metric for r in result.rows]
    assert sum("Pearson r" in m for m in metrics) == 4  # 2 bases x (inference, training)
    equal = next(r for r in result.rows if r.metric.startswith("profile() equals"))
    assert equal.verdict == REPRODUCED and equal.measured == "18 of 18"
    exponents = result.tables[0]
    assert len(exponents.rows) == 16 and {r[1] for r in exponents.rows} >= {"w", "dwr", "dWr(0.8)"}
    w = next(r for r in exponents.rows if r[0] == "RegNetY-400MF-like" and r[1] == "r")
    assert w[4] == 0.0 and w[5] == 0.0  # resolution scaling leaves params alone, exactly
    assert len(result.tables[2].rows) == 18
    assert [f.name for f in result.figures] == ["runtime_efficientnet_b0", "runtime_regnety_400mf"]
    assert all(f.png.startswith(b"\x89PNG") for f in result.figures)
