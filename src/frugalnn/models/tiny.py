"""MLPerf Tiny models for batch-1 on-device training (PULP-TrainLib, Nadalini et al. 2023; PAPERS.md 5).

    resnet8()     # image classification, 3x32x32: 77,360 weights, 12.50 M forward MACs
    dscnn()       # keyword spotting, 1x49x10 MFCC: 22,016 weights, 2.66 M forward MACs

"Weights" are the conv and linear weight elements (the paper's count): biases and BatchNorm
parameters are not in it. BatchNorm follows every conv for torch training; frugalnn.odl folds it
into the conv (frozen statistics, as an MCU runs it).

TF "same" padding at stride 2 on an even input is asymmetric: 0 rows/columns at the top/left and 1
at the bottom/right. `SamePad` does that explicitly (a ZeroPad2d in front of an unpadded conv), so
torch, the cost profile and the ODL engine all see the same geometry.

MACs per training step (`step_macs`): forward + weight gradient (the same count as forward for every
layer) + input gradient for every layer except the first (whose input needs no gradient).
"""
from __future__ import annotations

import torch
from torch import nn

RESNET8_WEIGHTS, RESNET8_MACS, RESNET8_STEP_MACS = 77_360, 12_501_632, 37_062_528
DSCNN_WEIGHTS, DSCNN_MACS, DSCNN_STEP_MACS = 22_016, 2_656_768, 7_650_304


def same_padding(size: int, k: int, stride: int) -> tuple[int, int]:
    """(before, after) of TF 'same' padding along one axis: the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def conv_same(c_in: int, c_out: int, k: tuple[int, int] | int, stride: int, size: tuple[int, int],
              groups: int = 1) -> nn.Sequential:
    """Conv2d with TF 'same' padding for an input of `size` (a ZeroPad2d only when asymmetric)."""
    kh, kw = (k, k) if isinstance(k, int) else k
    (t, b), (l, r) = same_padding(size[0], kh, stride), same_padding(size[1], kw, stride)
    if t == b and l == r:
        return nn.Sequential(nn.Conv2d(c_in, c_out, (kh, kw), stride, (t, l), groups=groups))
    return nn.Sequential(nn.ZeroPad2d((l, r, t, b)), nn.Conv2d(c_in, c_out, (kh, kw), stride, 0, groups=groups))


class ResBlock(nn.Module):
    """MLPerf Tiny ResNet stack: conv-BN-ReLU, conv-BN, (1x1 strided conv shortcut), add, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, size: int):
        super().__init__()
        self.conv1 = conv_same(c_in, c_out, 3, stride, (size, size))
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = conv_same(c_out, c_out, 3, 1, (size // stride, size // stride))
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = None if stride == 1 and c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet8(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.stem = conv_same(in_channels, 16, 3, 1, (32, 32))
        self.bn = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.stack1 = ResBlock(16, 16, 1, 32)
        self.stack2 = ResBlock(16, 32, 2, 32)
        self.stack3 = ResBlock(32, 64, 2, 16)
        self.pool = nn.AvgPool2d(8)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.relu(self.bn(self.stem(x)))
        x = self.stack3(self.stack2(self.stack1(x)))
        return self.fc(self.flatten(self.pool(x)))


class DSCNN(nn.Module):
    """DS-CNN-S (MLPerf Tiny KWS): 10x4 stride-2 conv 64, four depthwise 3x3 + pointwise 1x1 blocks, pool, FC."""

    def __init__(self, num_classes: int = 12, width: int = 64, blocks: int = 4):
        super().__init__()
        layers: list[nn.Module] = [*conv_same(1, width, (10, 4), 2, (49, 10)), nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(blocks):
            layers += [*conv_same(width, width, 3, 1, (25, 5), groups=width), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.Conv2d(width, width, 1), nn.BatchNorm2d(width), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d((25, 5))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


def resnet8(num_classes: int = 10) -> ResNet8:
    return ResNet8(num_classes)


def dscnn(num_classes: int = 12) -> DSCNN:
    return DSCNN(num_classes)


def example_input(model: nn.Module) -> torch.Tensor:
    return torch.randn(1, 1, 49, 10) if isinstance(model, DSCNN) else torch.randn(1, 3, 32, 32)


def weight_count(model: nn.Module) -> int:
    """Conv and linear weight elements (no biases, no BatchNorm): the paper's 'weights'."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def step_macs(model: nn.Module, x: torch.Tensor | None = None) -> int:
    """MACs of one training step: forward + weight grad + input grad of every layer but the first."""
    from frugalnn.cost import profile

    x = example_input(model) if x is None else x
    per_layer = [c.macs for name, c in profile(model, x).by_module().items()
                 if c.type in ("Conv2d", "Linear") and c.macs]
    return 3 * sum(per_layer) - per_layer[0]
