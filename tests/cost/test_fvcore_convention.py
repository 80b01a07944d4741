"""Cross-check against fvcore (test extra) on a standard ResNet-like model.

convention="fvcore" must equal fvcore.nn.FlopCountAnalysis exactly, module by module; the default
convention differs only by the norm and pooling counts fvcore adds (documented in docs/scaling.md).
"""
import fvcore.nn as fvcore_nn  # a test dependency (pyproject [test])
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.cost import Profiler, profile


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class ResNetLike(nn.Module):
    """ResNet-18 layout at reduced width: 7x7 stem + max pool, 4 stages of 2 basic blocks, linear head."""

    def __init__(self, width=16, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        widths = [width, 2 * width, 4 * width, 8 * width]
        blocks, c = [], width
        for i, w in enumerate(widths):
            blocks += [BasicBlock(c, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            c = w
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


@pytest.fixture(scope="module")
def resnet_and_input():
    torch.manual_seed(0)
    return ResNetLike().eval(), torch.randn(2, 3, 64, 64)


def test_fvcore_convention_equals_fvcore_per_module(resnet_and_input):
    model, x = resnet_and_input
    theirs = fvcore_nn.FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    ours = Profiler(convention="fvcore")(model, x)
    assert ours.macs == theirs.total()
    assert {n: c.macs for n, c in ours.by_module().items()} == dict(theirs.by_module())
    names = {"aten::convolution": "conv", "aten::addmm": "linear", "aten::batch_norm": "batch_norm",
             "aten::adaptive_avg_pool2d": "adaptive_avg_pool2d"}
    assert {names[k]: v for k, v in ours.by_operator().items()} == dict(theirs.by_operator())


def test_default_convention_is_fvcore_without_norm_and_pool(resnet_and_input):
    model, x = resnet_and_input
    theirs = fvcore_nn.FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    ours = profile(model, x)
    by_op = theirs.by_operator()
    assert ours.macs == theirs.total() - by_op["batch_norm"] - by_op["adaptive_avg_pool2d"]
    acts = fvcore_nn.ActivationCountAnalysis(model, x).unsupported_ops_warnings(False)
    assert ours.acts == acts.uncalled_modules_warnings(False).total()
    assert ours.params == fvcore_nn.parameter_count(model)[""]


def test_fvcore_extras_for_norms_and_upsampling():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.Upsample(scale_factor=2),
                          nn.Upsample(scale_factor=2, mode="bilinear"), nn.Flatten(2), nn.LayerNorm(16 * 16))
    x = torch.randn(1, 3, 4, 4)
    theirs = fvcore_nn.FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert Profiler(convention="fvcore")(model, x).macs == theirs.total()
