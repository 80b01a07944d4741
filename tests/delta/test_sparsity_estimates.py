"""The two sparsity estimates' gradients on the step (why the L1 one cannot grow a step), step
calibration, and the sweep helpers both experiments share."""
import pytest
import torch

from frugalnn.delta import sparsity
from frugalnn.delta.nn import Clips, DeltaActivation
from frugalnn.delta.sweep import density_verdict, matched, pick


def _one_layer(step: float):
    torch.manual_seed(0)
    layer = DeltaActivation(1, step, rate=1.0)
    layer.fan_out = 1.0
    model = Clips(torch.nn.Sequential(layer))
    a = torch.rand(64, 1, 1, 8, 8)
    x = torch.cat([a, a + 0.05 * torch.randn_like(a)], 1)      # small temporal changes everywhere
    model(x)
    return layer, model


def test_the_l1_estimate_pushes_the_step_down_and_the_count_estimate_up():
    for estimate, sign in (("l1", 1.0), ("count", -1.0)):
        layer, model = _one_layer(0.05)
        sparsity.sparsity_loss(model, estimate=estimate).backward()
        assert sign * float(layer.log_step.grad) > 0, estimate
    # the count estimate is the expected fraction of nonzero deltas: near the measured one
    layer, model = _one_layer(0.2)
    est = float(sparsity.sparsity_loss(model, estimate="count").detach())
    assert est == pytest.approx(sparsity.temporal_density(model)["all"], abs=0.05)
    with pytest.raises(ValueError, match="estimate"):
        sparsity.sparsity_loss(model, estimate="l2")


def test_calibrate_steps_sets_each_channel_to_its_typical_change():
    layer = DeltaActivation(2, 0.5)
    model = Clips(torch.nn.Sequential(layer))
    x = torch.zeros(4, 2, 2, 3, 3)
    x[:, 1, 0] = 0.2                      # channel 0 changes by 0.2 everywhere; channel 1 never changes
    steps = sparsity.calibrate_steps(model, x, scale=2.0)
    assert float(steps[0][0]) == pytest.approx(0.4) and float(layer.step[1].detach()) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="scale"):
        sparsity.calibrate_steps(model, x, scale=0.0)
    with pytest.raises(ValueError, match="clips"):
        sparsity.calibrate_steps(model, x[:, :1])


def test_pick_matched_and_the_verdict_can_fail():
    rows = [{"rate": 1, "density": 0.4, "psnr": 29.0}, {"rate": 10, "density": 0.1, "psnr": 28.0},
            {"rate": 3, "density": 0.2, "psnr": 28.8}]
    assert pick(rows, 29.1, "psnr", 0.5) == (rows[2], True)
    assert pick(rows, 40.0, "psnr", 0.5) == (rows[0], False)
    assert matched(rows, 0.09)["rate"] == 10
    assert density_verdict(3.5, True, "")["verdict"] == "reproduced"
    assert density_verdict(1.2, True, "")["verdict"] == "not reproduced"
    assert density_verdict(9.0, False, "lost 0.7 dB")["verdict"] == "not reproduced"
