"""Config validation: an impossible subnet names the field."""
import random

import pytest

from frugalnn.tdnn import BASE, SMALL, Supernet, SubnetConfig, SupernetConfig


@pytest.mark.parametrize("cfg, field", [
    ((0, [512], [5], 1536), "depth"),
    ((2, [512, 512], [5, 3, 3], 1536), "widths"),
    ((2, [512, 512, 512], [5, 3], 1536), "kernels"),
    ((2, [512, 500, 512], [5, 3, 3], 1536), r"widths\[1\]"),
    ((2, [512, 512, 512], [5, 4, 3], 1536), r"kernels\[1\]"),
    ((2, [512, 512, 512], [5, 3, 3], 1537), "cat"),
    ((2, [512, 512, 512], [5, 3, 3], -8), "cat"),
])
def test_malformed_subnet_names_the_field(cfg, field):
    with pytest.raises(ValueError, match=field):
        SubnetConfig.of(cfg)


@pytest.mark.parametrize("cfg, field", [
    ((2.0, [512] * 3, [5] * 3, 1536), "depth"),
    ((2, [512, "a", 512], [5] * 3, 1536), r"widths\[1\]"),
    ((2, 512, [5] * 3, 1536), "widths"),
    ("base", "cfg"),
])
def test_wrong_types_name_the_field(cfg, field):
    with pytest.raises(TypeError, match=field):
        SubnetConfig.of(cfg)


@pytest.mark.parametrize("cfg, field", [
    ((1, [512, 512], [5, 3], 1536), "depth"),
    ((5, [512] * 6, [5] * 6, 1536), "depth"),
    ((2, [512, 1024, 512], [5, 3, 3], 1536), r"widths\[1\]"),
    ((2, [64, 512, 512], [5, 3, 3], 1536), r"widths\[0\]"),
    ((2, [512] * 3, [5, 7, 3], 1536), r"kernels\[1\]"),
    ((2, [512] * 3, [5, 3, 3], 3072), "cat"),
    ((2, [512] * 3, [5, 3, 3], 200), "cat"),
])
def test_outside_the_supernet_names_the_field(cfg, field):
    net = Supernet(SupernetConfig(channels=512, cat=1536))
    with pytest.raises(ValueError, match=field):
        net.set_active_subnet(cfg)
    with pytest.raises(ValueError, match=field):
        net.get_active_subnet(cfg)


def test_supernet_config_errors():
    with pytest.raises(ValueError, match="channels"):
        SupernetConfig(channels=100)
    with pytest.raises(ValueError, match="depths"):
        SupernetConfig(depths=(2, 5))
    with pytest.raises(ValueError, match="kernels"):
        SupernetConfig(kernels=(2, 3))
    with pytest.raises(TypeError, match="config"):
        Supernet({"channels": 512})
    with pytest.raises(TypeError, match="rng"):
        Supernet(SupernetConfig(channels=64, cat=192)).sample_active_subnet(0)


def test_sampling_and_round_trips():
    sc = SupernetConfig()
    assert sc.width_choices == (128, 176, 256, 384, 512)  # the authors' coarse grid
    assert sc.cat_choices == (384, 536, 768, 1152, 1536)
    rng = random.Random(0)
    for _ in range(50):
        cfg = sc.sample(rng)
        assert sc.check(cfg) == cfg
        assert SubnetConfig.from_dict(cfg.to_dict()) == cfg
    assert {sc.sample(rng, depths=(4,), kernels=(5,)).depth for _ in range(5)} == {4}
    assert SupernetConfig.from_dict(sc.to_dict()) == sc
    assert SMALL.scaled(0.25) == SubnetConfig(2, (64, 64, 64), (3, 3, 3), 104)
    assert BASE.scaled(0.25).widths == (128,) * 4
