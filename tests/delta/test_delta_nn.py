"""DeltaActivation, DeltaConfig/convert_, Clips, and the sparsity loss with fan-outs from cost.profile."""
import pytest
import torch

import frugalnn
from frugalnn.delta import sparsity
from frugalnn.delta.nn import Clips, DeltaActivation, DeltaConfig, clip_loss, delta_layers
from frugalnn.models.frame_cnn import frame_cnn


def test_quantizer_rounds_to_the_step_with_a_straight_through_gradient():
    layer = DeltaActivation(2, init_step=0.25)
    x = torch.tensor([[0.1, 0.3], [0.2, -0.9]]).requires_grad_()
    y = layer(x)
    assert torch.allclose(y, torch.tensor([[0.0, 0.25], [0.25, -1.0]]))
    y.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))      # STE: identity
    assert layer.log_step.grad is not None and torch.isfinite(layer.log_step.grad).all()


def test_bad_layer_and_config_arguments():
    with pytest.raises(ValueError, match="channels"):
        DeltaActivation(0)
    with pytest.raises(ValueError, match="init_step"):
        DeltaActivation(3, init_step=0.0)
    with pytest.raises(ValueError, match=r"expected \[N, 3"):
        DeltaActivation(3)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="rate"):
        DeltaConfig(rate=-1)
    with pytest.raises(ValueError, match="placement"):
        DeltaConfig(placement="everywhere")
    c = DeltaConfig(rate=0.3, init_step=0.1)
    assert DeltaConfig.from_dict(c.to_dict()) == c


def test_convert_places_a_layer_after_the_input_and_every_relu():
    torch.manual_seed(0)
    cnn = frame_cnn()
    frugalnn.convert_(cnn, DeltaConfig(rate=0.2))
    layers = delta_layers(cnn)
    assert [m.channels for m in layers] == [1, 16, 32, 32, 32, 64] and all(m.rate == 0.2 for m in layers)
    assert isinstance(cnn.stem[0][0], DeltaActivation) and "DeltaActivation" in str(cnn)
    with pytest.raises(ValueError, match="already"):
        frugalnn.convert_(cnn, DeltaConfig())
    only = frame_cnn()
    frugalnn.convert_(only, DeltaConfig(placement="activations"))
    assert [m.channels for m in delta_layers(only)] == [16, 32, 32, 32, 64]


def test_fan_outs_are_the_next_layers_macs_per_element():
    cnn = frugalnn.convert_(frame_cnn(), DeltaConfig())
    fo = sparsity.fan_outs(cnn, (1, 64, 64))
    # input -> stem conv (16 out, 3x3, stride 2: 32x32x16x9 MACs over 64x64 inputs)
    assert fo["stem.0.0"] == pytest.approx(32 * 32 * 16 * 9 / (64 * 64))
    # block input feeds conv1 (32->32 3x3 at 16x16) only; the skip add costs no MACs
    assert fo["down.2.1"] == pytest.approx(16 * 16 * 32 * 32 * 9 / (16 * 16 * 32))
    # the last activation feeds the linear layer through the average pool
    assert fo["down2.2.1"] == pytest.approx(64 * 10 / (8 * 8 * 64))


def test_sparsity_loss_and_its_mac_estimate_on_a_clip():
    torch.manual_seed(0)
    cnn = frugalnn.convert_(frame_cnn(), DeltaConfig(rate=1.0))
    model = Clips(cnn)
    x = torch.rand(2, 1, 1, 64, 64).repeat(1, 3, 1, 1, 1)
    x[:, 2] += 0.5 * torch.rand(2, 1, 64, 64)              # frames 0 and 1 equal, frame 2 changes
    logits = model(x)
    assert logits.shape == (2, 3, 10)
    loss = clip_loss(logits, torch.tensor([1, 2])) + sparsity.sparsity_loss(model)
    loss.backward()
    assert all(m.log_step.grad is not None for m in delta_layers(cnn))
    dens = sparsity.temporal_density(model)
    assert 0 < dens["all"] < 1 and dens["stem.0.0"] > 0
    est = sparsity.estimated_macs(model)
    assert 0 < est < sparsity.dense_macs(model)
    static = Clips(cnn)
    static(torch.rand(1, 1, 1, 64, 64).repeat(1, 4, 1, 1, 1))
    assert sparsity.estimated_macs(static) == 0 and float(sparsity.sparsity_loss(static).detach()) == 0


def test_sparsity_loss_needs_a_clip():
    cnn = frugalnn.convert_(frame_cnn(), DeltaConfig())
    with pytest.raises(ValueError, match="no recorded"):
        sparsity.sparsity_loss(cnn, frame_shape=(1, 64, 64))
    with pytest.raises(ValueError, match="fan_out"):
        sparsity.sparsity_loss(cnn, fan_out="bytes")
    with pytest.raises(ValueError, match="no DeltaActivation"):
        sparsity.sparsity_loss(frame_cnn())
