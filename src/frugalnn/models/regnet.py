"""RegNet(X/Y) of our own (after pycls's AnyNet with residual bottleneck blocks), with its config,
its closed-form complexity (its scaler is frugalnn.scaling.scalers).

    stem   3x3 conv stride 2, BN, ReLU
    stage  d blocks; the first has stride 2 and a 1x1 projection shortcut
    block  1x1 (w_in -> w_b), 3x3 grouped (groups = w_b / group width, stride s), [SE], 1x1 (-> w_out)
    SE     global pool, 1x1 (w_b -> round(se_ratio * w_in), bias), ReLU, 1x1 (-> w_b, bias), sigmoid
    head   global pool, linear
RegNetY is se_ratio 0.25, RegNetX is se_ratio 0. `RegNetConfig.from_params` turns the design-space
parameters (w_a, w_0, w_m, depth, group width) into per-stage widths and depths, as in the paper.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from frugalnn.cost.analytic import Complexity, Cx
from frugalnn.models.blocks import SqueezeExcite, conv_bn, init_weights, positive_ints
from frugalnn.models.rounding import fit_group_widths


@dataclass
class RegNetConfig:
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    group_widths: tuple[int, ...]
    bottleneck_ratios: tuple[float, ...] = ()   # empty: 1.0 per stage
    strides: tuple[int, ...] = ()               # empty: 2 per stage
    stem_width: int = 32
    se_ratio: float = 0.25
    num_classes: int = 1000
    resolution: int = 224
    in_channels: int = 3
    name: str = field(default="regnet", compare=False)

    def __post_init__(self):
        self.depths = positive_ints("depths", self.depths)
        n = len(self.depths)
        self.widths = positive_ints("widths", self.widths)
        self.group_widths = positive_ints("group_widths", self.group_widths)
        self.bottleneck_ratios = tuple(float(b) for b in self.bottleneck_ratios) or (1.0,) * n
        self.strides = positive_ints("strides", self.strides) if self.strides else (2,) * n
        for label, seq in (("widths", self.widths), ("group_widths", self.group_widths),
                           ("bottleneck_ratios", self.bottleneck_ratios), ("strides", self.strides)):
            if len(seq) != n:
                raise ValueError(f"{label}: expected {n} stages (one per depth), got {len(seq)}")
        for i, (w, b, g) in enumerate(zip(self.widths, self.bottleneck_ratios, self.group_widths)):
            if b <= 0 or (w * b) != int(w * b) or int(w * b) % g:
                raise ValueError(f"stage {i + 1}: bottleneck width {w} x {b} must be a whole multiple of "
                                 f"group width {g}")
        for label in ("stem_width", "num_classes", "resolution", "in_channels"):
            positive_ints(label, [getattr(self, label)])
        if not 0.0 <= self.se_ratio < 1.0:
            raise ValueError(f"se_ratio: expected a number in [0, 1), got {self.se_ratio!r}")

    @classmethod
    def from_params(cls, w_a: float, w_0: int, w_m: float, depth: int, group_width: int, quantum: int = 8,
                    **kwargs) -> "RegNetConfig":
        """Per-stage widths/depths from the RegNet design-space parameters (Radosavovic et al. 2020):
        block j has width w_0 + w_a * j, snapped to w_0 * w_m^k, rounded to a multiple of `quantum`."""
        if not (w_a >= 0 and w_0 > 0 and w_m > 1 and w_0 % quantum == 0 and depth >= 1):
            raise ValueError(f"RegNet params: need w_a >= 0, w_0 > 0 multiple of {quantum}, w_m > 1, depth >= 1; "
                             f"got w_a={w_a}, w_0={w_0}, w_m={w_m}, depth={depth}")
        continuous = np.arange(depth) * w_a + w_0
        steps = np.round(np.log(continuous / w_0) / np.log(w_m))
        per_block = (np.round(w_0 * np.power(w_m, steps) / quantum) * quantum).astype(int)
        widths, depths = np.unique(per_block, return_counts=True)
        groups = [min(group_width, int(w)) for w in widths]
        widths = fit_group_widths([int(w) for w in widths], [1.0] * len(widths), groups)
        return cls(depths=tuple(int(d) for d in depths), widths=tuple(widths), group_widths=tuple(groups), **kwargs)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "RegNetConfig":
        return cls(**d)

    def build(self) -> "RegNet":
        return RegNet(self)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        return torch.randn(batch, self.in_channels, self.resolution, self.resolution)

    def stages(self):
        """(w_in, w_out, stride, depth, bottleneck ratio, group width) per stage."""
        w_in = self.stem_width
        for d, w, s, b, g in zip(self.depths, self.widths, self.strides, self.bottleneck_ratios, self.group_widths):
            yield w_in, w, s, d, b, g
            w_in = w

    def complexity(self) -> Complexity:
        """MACs / params / acts of one image, layer by layer (must equal frugalnn.cost.profile)."""
        cx = Cx(self.resolution, self.resolution)
        cx.conv2d(self.in_channels, self.stem_width, 3, stride=2).norm2d(self.stem_width)
        for w_in, w_out, stride, depth, b, g in self.stages():
            for i in range(depth):
                _block_cx(cx, w_in if i == 0 else w_out, w_out, stride if i == 0 else 1, b, g, self.se_ratio)
        cx.pool_global().linear(self.widths[-1], self.num_classes)
        return cx.result()


def _block_cx(cx: Cx, w_in: int, w_out: int, stride: int, b: float, g: int, se_ratio: float) -> None:
    w_b = int(round(w_out * b))
    if w_in != w_out or stride != 1:
        with cx.branch():
            cx.conv2d(w_in, w_out, 1, stride=stride).norm2d(w_out)
    cx.conv2d(w_in, w_b, 1).norm2d(w_b)
    cx.conv2d(w_b, w_b, 3, stride=stride, groups=w_b // g).norm2d(w_b)
    if se_ratio:
        w_se = int(round(w_in * se_ratio))
        with cx.branch():
            cx.pool_global().conv2d(w_b, w_se, 1, bias=True).conv2d(w_se, w_b, 1, bias=True)
    cx.conv2d(w_b, w_out, 1).norm2d(w_out)


class BottleneckBlock(nn.Module):
    def __init__(self, w_in: int, w_out: int, stride: int, b: float, g: int, se_ratio: float):
        super().__init__()
        w_b = int(round(w_out * b))
        self.proj = nn.Sequential(*conv_bn(w_in, w_out, 1, stride)) if (w_in != w_out or stride != 1) else None
        layers = [*conv_bn(w_in, w_b, 1), nn.ReLU(inplace=True),
                  *conv_bn(w_b, w_b, 3, stride, groups=w_b // g), nn.ReLU(inplace=True)]
        if se_ratio:
            layers.append(SqueezeExcite(w_b, int(round(w_in * se_ratio))))
        layers += conv_bn(w_b, w_out, 1)
        self.f = nn.Sequential(*layers)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        shortcut = self.proj(x) if self.proj is not None else x
        return self.act(shortcut + self.f(x))


class RegNet(nn.Module):
    def __init__(self, config: RegNetConfig):
        super().__init__()
        if not isinstance(config, RegNetConfig):
            raise TypeError(f"config: expected RegNetConfig, got {type(config).__name__}")
        self.config = config
        self.stem = nn.Sequential(*conv_bn(config.in_channels, config.stem_width, 3, 2), nn.ReLU(inplace=True))
        stages = []
        for w_in, w_out, stride, depth, b, g in config.stages():
            stages.append(nn.Sequential(*[BottleneckBlock(w_in if i == 0 else w_out, w_out, stride if i == 0 else 1,
                                                          b, g, config.se_ratio) for i in range(depth)]))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(config.widths[-1], config.num_classes)
        init_weights(self)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


# Design-space parameters of the published RegNetY models (pycls model zoo / the RegNet paper).
PRESETS = {
    "regnety-200mf": dict(w_a=36.44, w_0=24, w_m=2.49, depth=13, group_width=8),
    "regnety-400mf": dict(w_a=27.89, w_0=48, w_m=2.09, depth=16, group_width=8),
    "regnety-600mf": dict(w_a=32.54, w_0=48, w_m=2.32, depth=15, group_width=16),
    "regnety-800mf": dict(w_a=38.84, w_0=56, w_m=2.40, depth=14, group_width=16),
}


def regnet_config(name: str, **overrides) -> RegNetConfig:
    """A preset RegNetY by name ('regnety-400mf', ...); `overrides` are RegNetConfig fields (resolution=...)."""
    if name not in PRESETS:
        raise ValueError(f"unknown RegNet preset {name!r}; known: {', '.join(PRESETS)}")
    return RegNetConfig.from_params(**PRESETS[name], name=name, **overrides)
