"""A small per-frame CNN for 64x64 grey video frames (the Delta Activation Layer's test bed).

    stem   conv3x3 1->c1 stride 2, BN, ReLU            64x64 -> 32x32
    down   conv3x3 c1->c2 stride 2, BN, ReLU           32x32 -> 16x16
    block  conv3x3 c2->c2, BN, ReLU, conv3x3 c2->c2, BN, + skip, ReLU   (a residual block)
    down2  conv3x3 c2->c3 stride 2, BN, ReLU           16x16 -> 8x8
    head   global average pool, linear c3 -> classes

Every activation is its own nn.ReLU module (no functional relu, no shared module), so
`convert_(model, DeltaConfig(...))` can place a Delta Activation Layer after each one, and the model
traces with torch.fx (frugalnn.delta.compile reads the graph).
"""
from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(channels, channels, 1)
        self.relu1 = nn.ReLU()
        self.conv2, self.bn2 = _conv_bn(channels, channels, 1)
        self.relu2 = nn.ReLU()

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + x)


class FrameCNN(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        c1, c2, c3 = widths
        self.in_channels = in_channels
        self.stem = nn.Sequential(*_conv_bn(in_channels, c1, 2), nn.ReLU())
        self.down = nn.Sequential(*_conv_bn(c1, c2, 2), nn.ReLU())
        self.block = ResidualBlock(c2)
        self.down2 = nn.Sequential(*_conv_bn(c2, c3, 2), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down2(self.block(self.down(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def frame_cnn(in_channels: int = 1, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)) -> FrameCNN:
    return FrameCNN(in_channels, num_classes, widths)
