"""CIFAR-style ResNets (He et al. 2016, section 4.2): a 3x3 stem, three stages of basic blocks at
widths w, 2w, 4w (the 2nd and 3rd start with stride 2), global average pooling, one linear layer.
Depth 6n + 2: ResNet-20 is n = 3 at widths 16/32/64 (0.27M parameters).

    resnet20(in_channels=1)                     # Fashion-MNIST / MNIST
    cifar_resnet(widths=(64, 128, 256))         # the wide variant: a 3x3 conv over 256 channels (K = 2304)

Shortcuts where the shape changes are the paper's option A (stride-2 subsampling and zero-padded
channels: no parameters), so every GEMM of the network is a 3x3 conv or the final linear layer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.models.blocks import positive_ints


class ShortcutA(nn.Module):
    """x[:, :, ::2, ::2] zero-padded from c_in to c_out channels (option A)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.stride, self.pad = stride, c_out - c_in

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels={self.pad}"


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.shortcut = ShortcutA(c_in, c_out, stride) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage: int = 3, widths=(16, 32, 64), in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        (blocks_per_stage,), (in_channels,), (num_classes,) = (positive_ints(n, (v,)) for n, v in (
            ("blocks_per_stage", blocks_per_stage), ("in_channels", in_channels), ("num_classes", num_classes)))
        widths = positive_ints("widths", widths)
        if len(widths) != 3 or any(b < a for a, b in zip(widths, widths[1:])):
            raise ValueError(f"widths: expected three non-decreasing stage widths, got {list(widths)}")
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        stages, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks = []
            for j in range(blocks_per_stage):
                blocks.append(BasicBlock(c, w, 2 if i > 0 and j == 0 else 1))
                c = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.stages(self.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def cifar_resnet(depth: int = 20, widths=(16, 32, 64), in_channels: int = 1, num_classes: int = 10) -> CifarResNet:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth: expected 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got {depth!r}")
    return CifarResNet((depth - 2) // 6, widths, in_channels, num_classes)


def resnet20(in_channels: int = 1, num_classes: int = 10) -> CifarResNet:
    return cifar_resnet(20, (16, 32, 64), in_channels, num_classes)
