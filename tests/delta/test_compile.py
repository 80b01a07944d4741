"""frugalnn.delta.compile: a torch per-frame CNN as an engine program; outputs against torch and the dense
quantized evaluation; the engine's MACs against the sparsity loss's estimate."""
import numpy as np
import pytest
import torch

import frugalnn
from frugalnn.delta import engine as dcompile, sparsity
from frugalnn.delta.nn import Clips, DeltaConfig
from frugalnn.kernels.delta_ref import dense
from frugalnn.models.frame_cnn import frame_cnn


def _trained_like(seed=0, delta=True, init_step=0.1):
    torch.manual_seed(seed)
    cnn = frame_cnn(widths=(8, 16, 16))
    if delta:
        frugalnn.convert_(cnn, DeltaConfig(init_step=init_step))
    for m in cnn.modules():   # non-trivial BN statistics, so folding is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return cnn.eval()


def _clip(frames=8, seed=0, cut=None):
    from frugalnn.data.moving import moving_clips

    x, _, _ = moving_clips(2, frames=frames, seed=seed)
    if cut is not None:
        x[0, cut:] = x[1, cut:]
    return x[0]


def test_dense_model_compiles_to_torchs_outputs():
    cnn = _trained_like(delta=False)
    stream = dcompile.compile(cnn, (1, 64, 64))
    frames = _clip()
    with torch.no_grad():
        want = cnn(torch.from_numpy(frames)).numpy()
    got = stream.run(frames)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert stream.layer_names[0] == "input" and len(stream.nonzeros) == len(stream.program.layers)


@pytest.mark.parametrize("impl", ["native", "numpy"])
def test_delta_model_equals_the_dense_quantized_network(impl):
    cnn = _trained_like()
    stream = dcompile.compile(cnn, (1, 64, 64), impl=impl)
    frames = _clip(cut=5)
    got = stream.run(frames)
    want = np.array([dense(stream.program, f) for f in frames])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        torch_out = cnn(torch.from_numpy(frames)).numpy()
    assert (got.argmax(1) == torch_out.argmax(1)).mean() >= 0.75   # float32 torch vs float64: rare flips


def test_static_clip_does_no_work_after_the_first_frame():
    stream = dcompile.compile(_trained_like(), (1, 64, 64))
    frame = _clip(1)[0]
    stream.reset()
    stream.push(frame)
    first = stream.macs
    for _ in range(5):
        stream.push(frame)
        assert stream.macs == 0 and sum(stream.nonzeros) == 0
    assert first > 0


def test_engine_macs_agree_with_the_sparsity_loss_estimate():
    cnn = _trained_like()
    model = Clips(cnn)
    frames = _clip(frames=12, seed=3)
    with torch.no_grad():
        model(torch.from_numpy(frames)[None])
    est = sparsity.estimated_macs(model)
    stream = dcompile.compile(cnn, (1, 64, 64))
    stream.reset()
    macs = []
    for f in frames:
        stream.push(f)
        macs.append(stream.macs)
    engine = float(np.mean(macs[1:]))
    assert engine == pytest.approx(est, rel=0.1)


def test_threshold_baseline_on_a_dense_model():
    cnn = _trained_like(delta=False)
    frames = _clip(frames=10)
    exact = dcompile.compile(cnn, (1, 64, 64))
    thr = dcompile.compile(cnn, (1, 64, 64), threshold=0.05)
    e_out, t_out = exact.run(frames), thr.run(frames)
    assert thr.total_macs < exact.total_macs
    assert np.abs(e_out - t_out).max() < 1.0


def test_unsupported_models_raise_clear_errors():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Sigmoid())
    with pytest.raises(ValueError, match="not supported"):
        dcompile.compile(net, (1, 8, 8))
    dil = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=2, dilation=2), torch.nn.ReLU())
    with pytest.raises(ValueError, match="dilation"):
        dcompile.compile(dil, (1, 8, 8))
    with pytest.raises(ValueError, match="threshold"):
        dcompile.compile(_trained_like(), (1, 64, 64), threshold=-1)
