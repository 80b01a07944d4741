"""The supernet's subnets: extraction computes exactly what the supernet computes; MACs match the paper."""
import random

import pytest
import torch

from frugalnn.tdnn import BASE, MOBILE, PAPER, SMALL, Supernet, SubnetConfig, SupernetConfig
from frugalnn.tdnn.cost import macs
from frugalnn.tdnn.nn import TDNN

QUICK = SupernetConfig(channels=64, cat=192)


def _randomized(config):
    torch.manual_seed(0)
    net = Supernet(config)
    with torch.no_grad():  # non-trivial BN statistics and kernel transforms
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        for p in net.kernel_transforms.values():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def test_extracted_subnet_equals_supernet():
    net = _randomized(QUICK)
    x = torch.randn(2, 80, 57)
    rng = random.Random(1)
    configs = [net.sample_active_subnet(rng) for _ in range(6)] + [QUICK.largest()]
    for cfg in configs:
        net.set_active_subnet(cfg)
        with torch.no_grad():
            want = net(x)
            got = net.get_active_subnet().eval()(x)
        assert isinstance(net.get_active_subnet(), TDNN)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6, msg=f"subnet {cfg}")


def test_extracted_subnet_is_independent_and_trains_the_same():
    net = _randomized(QUICK)
    cfg = net.set_active_subnet((2, [32, 48, 24], [3, 1, 5], 96))
    sub = net.get_active_subnet()
    with torch.no_grad():
        sub.layer1.conv.weight.add_(1.0)  # a copy: the supernet is untouched
    assert not torch.equal(sub.layer1.conv.weight, net.net.layer1.conv.weight[:32, :, 1:-1])
    # train-mode BN updates land in the supernet's slices, and match the subnet's own updates
    net.train()
    sub = net.get_active_subnet(cfg).train()
    x = torch.randn(4, 80, 40)
    with torch.no_grad():
        net(x)
        sub(x)
    again = net.get_active_subnet(cfg)
    torch.testing.assert_close(again.bnpool.running_mean, sub.bnpool.running_mean)
    torch.testing.assert_close(again.blocks[0].res2[2].bn.running_var, sub.blocks[0].res2[2].bn.running_var)


def test_kernel_transform_starts_as_centre_crop():
    net = Supernet(QUICK)
    sub = net.get_active_subnet((2, [64, 64, 64], [1, 3, 5], 192))
    torch.testing.assert_close(sub.layer1.conv.weight, net.net.layer1.conv.weight[:, :, 2:3])
    torch.testing.assert_close(sub.blocks[0].res2[0].conv.weight, net.net.blocks[0].res2[0].conv.weight[:, :, 1:4])


def test_recalibrate_bn_is_the_batch_average():
    net = _randomized(QUICK)
    net.set_active_subnet((2, [32, 32, 32], [3, 3, 3], 96))
    batches = [torch.randn(3, 80, 30) + i for i in range(3)]
    assert net.recalibrate_bn(batches) == 3
    mean = torch.stack([b.mean(dim=(0, 2)) for b in batches]).mean(0)
    assert net.net.layer1.bn.momentum == 0.1  # restored
    # layer1's conv input statistics are not observable directly; the BN after ReLU is: recompute it
    w = net.get_active_subnet().layer1.conv.weight
    acts = [torch.relu(torch.nn.functional.conv1d(b, w, padding=1)) for b in batches]
    torch.testing.assert_close(net.net.layer1.bn.running_mean[:32], torch.stack([a.mean(dim=(0, 2)) for a in acts]).mean(0))
    assert mean.shape == (80,)
    with pytest.raises(ValueError, match="loader"):
        net.recalibrate_bn([])


@pytest.mark.parametrize("name", ["Base", "Mobile", "Small"])
def test_paper_mac_counts_exact(name):
    want = {"Base": 1_445_211_648, "Mobile": 570_984_384, "Small": 204_072_768}[name]
    got = macs(TDNN(PAPER[name]))
    assert got == want
    printed = {"Base": "1.45 G", "Mobile": "571 M", "Small": "204 M"}[name]
    shown = f"{got / 1e9:.2f} G" if got >= 1e9 else f"{got / 1e6:.0f} M"
    assert shown == printed


def test_macs_counted_on_the_supernets_extraction():
    net = Supernet()  # the paper's supernet: 4 blocks x 512, kernel 5, cat 1536
    assert macs(net.get_active_subnet(SMALL)) == 204_072_768
    assert len(net.kernel_transforms) == 2 * (1 + 4 * 7)


def test_paper_configs_fit_the_paper_supernet():
    for cfg in (BASE, MOBILE, SMALL):
        assert SupernetConfig().check(cfg.to_tuple()) == cfg
    assert SubnetConfig.of(BASE.to_tuple()) == BASE


def test_closed_form_macs_and_params_match_the_profile():
    from frugalnn.tdnn.cost import analytic_macs, analytic_params, params

    rng = random.Random(3)
    for cfg in [QUICK.sample(rng) for _ in range(3)] + [SMALL]:
        model = TDNN(cfg)
        assert analytic_macs(cfg) == macs(model), cfg
        assert analytic_params(cfg) == params(model), cfg
    assert analytic_macs(BASE, frames=300) == 1_440_413_568
