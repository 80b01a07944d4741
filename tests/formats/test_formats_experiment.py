"""The number-formats experiment: its verdict rules fed passing and failing figures, and a quick run."""
import numpy as np
import pytest

from frugalnn.formats import FORMATS, round_to
from frugalnn.formats import experiment
from frugalnn.report import Context
from frugalnn.report.verdicts import CLAIM_VERDICTS, NOT_REPRODUCED, REPRODUCED


@pytest.mark.parametrize("ratio, verdict", [(0.5, REPRODUCED), (0.99, REPRODUCED), (1.0, REPRODUCED),
                                            (1.01, NOT_REPRODUCED), (0.3, NOT_REPRODUCED)])
def test_rounding_verdict(ratio, verdict):
    u = FORMATS["e4m3"].unit_roundoff
    v = experiment.rounding_verdict(ratio * u, u)
    assert v["verdict"] == verdict and "<= 1" in v["rule"] and "0.5" in v["rule"]


def test_rounding_verdict_rejects_a_bad_unit_roundoff():
    with pytest.raises(ValueError, match="unit_roundoff"):
        experiment.rounding_verdict(0.01, 0.0)


def test_dfp_bound_verdict():
    assert experiment.dfp_bound_verdict(0.999)["verdict"] == REPRODUCED
    v = experiment.dfp_bound_verdict(1.5)
    assert v["verdict"] == NOT_REPRODUCED and "<= 1" in v["rule"]


def test_a_format_that_does_not_round_to_its_mantissa_fails():
    x = np.random.default_rng(0).standard_normal(10000).astype(np.float32)
    x = x[(np.abs(x) >= FORMATS["e4m3"].smallest_normal) & (np.abs(x) <= FORMATS["e4m3"].max)]
    u = FORMATS["e4m3"].unit_roundoff
    worst = lambda y: experiment.error_stats(x, y)["max_rel"]  # noqa: E731
    assert experiment.rounding_verdict(worst(round_to(x, "e4m3")), u)["verdict"] == REPRODUCED
    assert experiment.rounding_verdict(worst(round_to(x, "e2m1")), u)["verdict"] == NOT_REPRODUCED  # too coarse
    assert experiment.rounding_verdict(worst(round_to(x, "bf16")), u)["verdict"] == NOT_REPRODUCED  # too fine


def test_quick_run_has_one_headline_and_a_rule_on_every_claim():
    result = experiment.formats(Context(quick=True))
    headline = [r for r in result.rows if r.headline]
    assert len(headline) == 1 and headline[0].metric.startswith(experiment.HEADLINE_FORMAT)
    assert all(r.rule for r in result.rows if r.verdict in CLAIM_VERDICTS)
    assert all(r.verdict == REPRODUCED for r in result.rows if r.verdict in CLAIM_VERDICTS)
    assert result.figures and result.figures[0].png[:4] == b"\x89PNG"
