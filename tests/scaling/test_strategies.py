"""Scaling strategies: the paper's exponents, pycls's rounding, achieved factors, bad input."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugalnn.scaling import STRATEGIES, achieved, scale, theory_exponents
from frugalnn.scaling.strategies import flops_shares, round_group_width, scale_factors
from frugalnn.models.effnet import effnet_config
from frugalnn.models.regnet import RegNetConfig, regnet_config

PAPER = {  # Dollar et al., Table 2 / Table 4: (params, acts) exponents of s
    "d": (1, 1), "w": (1, 1 / 2), "r": (0, 1), "dw": (1, 3 / 4), "dr": (1 / 2, 1), "wr": (1 / 2, 3 / 4),
    "dwr": (2 / 3, 5 / 6), "dWr": (0.9, 0.6),
}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_theory_exponents_match_the_paper(strategy):
    e = theory_exponents(strategy, alpha=0.8)
    assert e["flops"] == 1 and math.isclose(e["params"], PAPER[strategy][0]) \
        and math.isclose(e["acts"], PAPER[strategy][1])
    assert math.isclose(sum(flops_shares(strategy, 0.8)), 1.0)


def test_fast_scaling_interpolates_between_uniform_and_width():
    assert flops_shares("dWr", 1 / 3) == pytest.approx(flops_shares("dwr"))
    assert flops_shares("dWr", 1.0) == pytest.approx(flops_shares("w"))
    assert flops_shares("dWr", 0.0) == pytest.approx(flops_shares("dr"))


@given(s=st.floats(0.05, 64), strategy=st.sampled_from(STRATEGIES), alpha=st.floats(0, 1))
def test_factors_multiply_to_the_flops_factor(s, strategy, alpha):
    f = scale_factors(s, strategy, alpha)
    assert math.isclose(f.depth * f.width ** 2 * f.resolution ** 2, s, rel_tol=1e-9)
    assert f.group_width == f.width
    assert scale_factors(s, strategy, alpha, scale_group_width=False).group_width == 1.0


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("s", [1, 2, 4, 8])
def test_regnet_scaling_rounds_like_pycls(strategy, s):
    base = regnet_config("regnety-400mf")
    out = scale(base, s, strategy)
    assert out is not base and base == regnet_config("regnety-400mf")  # base untouched
    assert all(w % 8 == 0 for w in out.widths) and out.resolution % 4 == 0
    assert all(g in (1, 2, 4) or g % 8 == 0 for g in out.group_widths)
    assert all(int(w * b) % g == 0 for w, b, g in zip(out.widths, out.bottleneck_ratios, out.group_widths))
    assert all(d >= 1 for d in out.depths) and out.stem_width == base.stem_width
    if s == 1:
        assert out == base
    got = achieved(base, out)
    assert 0.8 * s <= got["flops"] <= 1.2 * s   # rounding makes it inexact, not wrong
    if strategy == "r":
        assert out.depths == base.depths and out.widths == base.widths and got["params"] == 1
    if strategy == "w":
        assert out.depths == base.depths and out.resolution == base.resolution


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_effnet_scaling_rounds_like_pycls(strategy):
    base = effnet_config("effnet-b0")
    out = scale(base, 4, strategy)
    assert all(w % 8 == 0 for w in out.widths) and out.stem_width % 8 == 0 and out.head_width % 8 == 0
    assert out.resolution % 4 == 0 and out.expansion_ratios == base.expansion_ratios
    assert 0.8 * 4 <= achieved(base, out)["flops"] <= 1.2 * 4


def test_known_values():
    base = regnet_config("regnety-400mf")
    d2 = scale(base, 2, "d")
    assert d2.depths == (2, 6, 12, 12) and d2.widths == base.widths
    r4 = scale(base, 4, "r")
    assert r4.resolution == 448
    w4 = scale(base, 4, "w")   # widths x2 -> multiples of 8; group width 8 x 2 = 16
    assert w4.widths == (96, 208, 416, 880) and w4.group_widths == (16, 16, 16, 16)
    assert [round_group_width(g, 1.0) for g in (1, 2, 3, 5, 6, 11, 13, 20)] == [1, 2, 4, 4, 8, 8, 16, 16]


def test_bad_input_is_a_clear_error():
    base = regnet_config("regnety-400mf")
    with pytest.raises(ValueError, match="unknown 'dwR'"):
        scale(base, 2, "dwR")
    for s in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="flops_factor"):
            scale(base, s, "w")
    for alpha in (-0.1, 1.5, float("nan"), "0.8"):
        with pytest.raises(ValueError, match="alpha"):
            scale(base, 2, "dWr", alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):  # validated for every strategy
        scale(base, 2, "w", alpha=2)
    with pytest.raises(TypeError, match="no scaler for dict"):
        scale({"widths": [8]}, 2, "w")
    wide_groups = RegNetConfig(depths=(1, 1), widths=(32, 64), group_widths=(32, 64), resolution=32)
    with pytest.raises(ValueError, match="below one group"):
        scale(wide_groups, 0.05, "w", scale_group_width=False)
    with pytest.raises(ValueError, match="resolution"):
        scale(base, 1e-5, "r")


def test_models_know_nothing_of_scaling():
    """The scalers live in frugalnn.scaling.scalers: building and counting a model never imports the technique."""
    import subprocess
    import sys

    code = ("import sys; from frugalnn import models; models.build('effnet-b0'); models.build('regnety-200mf'); "
            "print(sorted(m for m in sys.modules if m.startswith('frugalnn.scaling')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
