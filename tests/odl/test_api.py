"""frugalnn.odl.compile: SGD and momentum match torch, weights round-trip through sync_to /
sync_from (BN folded and unfolded), the tuner caches per CPU, and bad input is a clear error."""
import numpy as np
import pytest
import torch
from torch import nn

import frugalnn.odl as odl
from frugalnn import _core
from frugalnn.models import tiny
from frugalnn.odl import graph, tune
from frugalnn.odl.reference import fold_bn, torch_step
from odl_helpers import randomize_bn, rel_err


def small():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 3))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_steps_match_torch(backend, momentum):
    model = randomize_bn(small())
    eng = odl.compile(model, input_shape=(2, 6, 6), autotune=False)
    ref = fold_bn(model).double()
    opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=momentum)
    torch.manual_seed(1)
    for i in range(4):
        x = torch.randn(1, 2, 6, 6)
        loss = eng.step(x, i % 3, 0.05, momentum=momentum)
        t_loss = torch_step(ref, opt, x.double(), torch.tensor([i % 3]))
        assert loss == pytest.approx(t_loss, rel=1e-5)
    for i, link in enumerate(eng.links):
        w, b = eng.net.get_param(i)
        m = ref.get_submodule(link.name)
        assert rel_err(w, m.weight.detach().numpy().ravel()) < 1e-5
        assert rel_err(b, m.bias.detach().numpy()) < 1e-5


def test_sync_round_trip_unfolds_bn():
    model = randomize_bn(small())
    eng = odl.compile(model, input_shape=(2, 6, 6), autotune=False)
    x = torch.randn(1, 2, 6, 6)
    for i in range(3):
        eng.step(x, i, 0.1)
    eng.sync_to(model)
    # the torch model (BN in eval mode) now computes what the engine computes
    np.testing.assert_allclose(model.eval()(x).detach().numpy(), eng.forward(x).numpy(), rtol=1e-4, atol=1e-5)
    fresh = odl.compile(model, input_shape=(2, 6, 6), autotune=False)
    np.testing.assert_allclose(fresh.forward(x).numpy(), eng.forward(x).numpy(), rtol=1e-5, atol=1e-6)


def test_fp16_engine_trains():
    torch.manual_seed(0)
    model = small()
    eng = odl.compile(model, dtype="fp16", accumulate="fp16", input_shape=(2, 6, 6), autotune=False)
    x = torch.randn(1, 2, 6, 6)
    losses = [eng.step(x, 1, 0.1) for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0]


def test_resnet8_residual_graph_compiles():
    eng = odl.compile(tiny.resnet8(), autotune=False)
    kinds = [k for k, _, _ in eng.net.node_times()]
    assert kinds.count(5) == 3  # three residual adds
    assert len(eng.links) == 10  # stem, 2 convs per stack, 2 shortcut convs, fc
    assert eng.forward(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_unsupported_layer_is_named():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(odl.UnsupportedLayerError, match=r"1 \(Sigmoid\)"):
        odl.compile(model, input_shape=(1, 3, 3))


def test_bn_not_after_conv_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(odl.UnsupportedLayerError, match="BatchNorm2d"):
        odl.compile(model, input_shape=(1, 3, 3))


@pytest.mark.parametrize("bad, exc, match", [
    (torch.randn(2, 2, 6, 6), ValueError, "batch 1"),
    (torch.randn(1, 2, 6, 6, dtype=torch.float64), TypeError, "float32"),
    (torch.randn(1, 2, 5, 6), ValueError, "shape"),
    (torch.full((1, 2, 6, 6), float("nan")), ValueError, "non-finite"),
    ([1.0, 2.0], TypeError, "tensor"),
])
def test_bad_input(bad, exc, match):
    eng = odl.compile(small(), input_shape=(2, 6, 6), autotune=False)
    with pytest.raises(exc, match=match):
        eng.step(bad, 0, 0.1)
    with pytest.raises(exc, match=match):
        eng.forward(bad)


def test_bad_labels_and_options():
    eng = odl.compile(small(), input_shape=(2, 6, 6), autotune=False)
    x = torch.randn(1, 2, 6, 6)
    with pytest.raises(ValueError, match="label"):
        eng.step(x, 3, 0.1)
    with pytest.raises(ValueError, match="one label"):
        eng.step(x, torch.tensor([0, 1]), 0.1)
    with pytest.raises(ValueError, match="lr"):
        eng.step(x, 0, float("nan"))
    with pytest.raises(ValueError, match="momentum"):
        eng.step(x, 0, 0.1, momentum=1.5)
    with pytest.raises(ValueError, match="dtype"):
        odl.compile(small(), dtype="bf16", input_shape=(2, 6, 6))
    with pytest.raises(ValueError, match="accumulate"):
        odl.compile(small(), dtype="fp32", accumulate="fp16", input_shape=(2, 6, 6))
    with pytest.raises(ValueError, match="input_shape"):
        odl.compile(small())


def test_non_finite_loss_is_an_error_and_changes_nothing():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.fill_(3000.0)
    eng = odl.compile(model, dtype="fp16", input_shape=(1, 2, 2), autotune=False)
    before = eng.net.get_param(0)[0].copy()
    with pytest.raises(ValueError, match="loss is not finite"):
        eng.step(torch.full((1, 1, 2, 2), 60.0), 0, 0.1)
    np.testing.assert_array_equal(eng.net.get_param(0)[0], before)


def test_tuner_caches_per_cpu(tmp_path, monkeypatch, backend):
    monkeypatch.setenv("FRUGALNN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tune, "_MEMORY", {})
    eng = odl.compile(small(), input_shape=(2, 6, 6))
    if backend == "serial":
        assert set(eng.kernels.values()) == {0}
        return
    assert eng.kernels and all(1 <= k < _core.odl.num_kernels for k in eng.kernels.values())
    cached = tune._load()
    assert len(cached) >= 1 and all(tune._cpu_model() in k for k in cached)
    # a corrupt cache file is ignored, not trusted
    tune.cache_path().write_text("{not json")
    assert tune._load() == {}


def test_memory_fp16_is_half():
    m = tiny.dscnn()
    b32 = odl.compile(m, autotune=False).bytes()
    b16 = odl.compile(m, dtype="fp16", autotune=False).bytes()
    assert 0.45 < b16 / b32 < 0.6


def test_graph_fold_unfold_inverse():
    model = randomize_bn(small())
    link = graph.ParamLink(model[0], model[1])
    w, b = graph.folded(link)
    graph.unfold_into(link, w * 1.0, b + 0.25)
    w2, b2 = graph.folded(link)
    assert torch.allclose(w2, w, atol=1e-6) and torch.allclose(b2, b + 0.25, atol=1e-6)
