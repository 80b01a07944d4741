"""RegNet(Y) and EfficientNet-style models: closed-form complexity == profile, exactly; configs validate."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frugalnn import models
from frugalnn.cost import profile
from frugalnn.scaling import scale
from frugalnn.models.effnet import EffNetConfig, effnet_config
from frugalnn.models.regnet import RegNetConfig, regnet_config


def counts(cfg):
    prof = profile(cfg.build().eval(), cfg.example_input())
    cx = cfg.complexity()
    return (prof.macs, prof.params, prof.acts), (cx.macs, cx.params, cx.acts)


@pytest.mark.parametrize("name", ["regnety-400mf", "effnet-b0"])
def test_presets_match_published_layouts(name):
    measured, analytic = counts(models.config(name, resolution=64))
    assert measured == analytic
    # parameter counts of the published models (torchvision reports the same numbers)
    assert analytic[1] == {"regnety-400mf": 4_344_144, "effnet-b0": 5_288_548}[name]


def test_published_complexity_at_224():
    # pycls model zoo: RegNetY-400MF 0.40 GF / 3.9 M acts, EfficientNet-B0 0.39 GF / 6.7 M acts
    reg, eff = regnet_config("regnety-400mf").complexity(), effnet_config("effnet-b0").complexity()
    assert round(reg.macs / 1e9, 2) == 0.40 and round(reg.acts / 1e6, 1) == 3.9
    assert round(eff.macs / 1e9, 2) == 0.39 and round(eff.acts / 1e6, 1) == 6.7


def test_regnet_from_params():
    cfg = regnet_config("regnety-400mf")
    assert cfg.depths == (1, 3, 6, 6) and cfg.widths == (48, 104, 208, 440) and cfg.group_widths == (8,) * 4


@settings(max_examples=15, deadline=None)
@given(depths=st.lists(st.integers(1, 2), min_size=1, max_size=3), w=st.sampled_from([8, 16, 24]),
       g=st.sampled_from([1, 4, 8]), b=st.sampled_from([1.0, 2.0]), se=st.sampled_from([0.0, 0.25]),
       res=st.integers(9, 33), stem=st.sampled_from([8, 16]))
def test_regnet_complexity_equals_profile(depths, w, g, b, se, res, stem):
    widths = tuple(w * (i + 1) for i in range(len(depths)))
    cfg = RegNetConfig(depths=tuple(depths), widths=widths, group_widths=(g,) * len(depths),
                       bottleneck_ratios=(b,) * len(depths), se_ratio=se, resolution=res, stem_width=stem,
                       num_classes=7)
    measured, analytic = counts(cfg)
    assert measured == analytic


@settings(max_examples=15, deadline=None)
@given(depths=st.lists(st.integers(1, 2), min_size=1, max_size=3), e=st.sampled_from([1, 3, 6]),
       k=st.sampled_from([3, 5]), s=st.sampled_from([1, 2]), res=st.integers(9, 33))
def test_effnet_complexity_equals_profile(depths, e, k, s, res):
    n = len(depths)
    cfg = EffNetConfig(depths=tuple(depths), widths=tuple(8 * (i + 1) for i in range(n)),
                       expansion_ratios=(e,) * n, kernels=(k,) * n, strides=(s,) * n, stem_width=8,
                       head_width=32, num_classes=5, resolution=res)
    measured, analytic = counts(cfg)
    assert measured == analytic


@pytest.mark.parametrize("strategy", ["d", "w", "r", "dWr"])
def test_scaled_models_still_match(strategy):
    for base in (regnet_config("regnety-200mf", resolution=32), effnet_config("effnet-b0", resolution=32)):
        measured, analytic = counts(scale(base, 2, strategy))
        assert measured == analytic


def test_forward_shapes_and_roundtrip():
    for cfg in (regnet_config("regnety-200mf", resolution=32, num_classes=3),
                effnet_config("effnet-b0", resolution=32, num_classes=3, dropout=0.2)):
        model = cfg.build()
        assert model(cfg.example_input(2)).shape == (2, 3)
        again = type(cfg).from_dict(cfg.to_dict())
        assert again == cfg and again.to_dict() == cfg.to_dict()


def test_config_validation():
    with pytest.raises(ValueError, match="widths: expected 2 stages"):
        RegNetConfig(depths=(1, 2), widths=(8,), group_widths=(8, 8))
    with pytest.raises(ValueError, match="multiple of group width 16"):
        RegNetConfig(depths=(1,), widths=(24,), group_widths=(16,))
    with pytest.raises(ValueError, match="depths"):
        RegNetConfig(depths=(0,), widths=(8,), group_widths=(8,))
    with pytest.raises(ValueError, match="se_ratio"):
        RegNetConfig(depths=(1,), widths=(8,), group_widths=(8,), se_ratio=1.5)
    with pytest.raises(ValueError, match="kernels: expected odd"):
        effnet_config("effnet-b0", kernels=(3, 3, 4, 3, 5, 5, 3))
    with pytest.raises(ValueError, match="resolution"):
        effnet_config("effnet-b0", resolution=0)
    with pytest.raises(ValueError, match="unknown model 'resnet-50'"):
        models.config("resnet-50")
    with pytest.raises(TypeError, match="RegNetConfig"):
        models.regnet.RegNet(effnet_config("effnet-b0"))


def test_builtin_names_build():
    assert {"regnety-400mf", "effnet-b0"} <= set(models.names())
    model, x = models.build("regnety-200mf", batch=2, resolution=32)
    assert not model.training and x.shape == (2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 1000)
