"""An EfficientNet-style network of our own (after pycls's EffNet), with config, closed-form
complexity (its scaler is frugalnn.scaling.scalers).

    stem    3x3 conv stride 2, BN, SiLU
    MBConv  [1x1 expand (w_in -> w_in * e), BN, SiLU] (skipped when e = 1), k x k depthwise (stride s),
            BN, SiLU, SE (squeeze to int(w_in * se_ratio), SiLU), 1x1 project (-> w_out), BN,
            identity shortcut when stride 1 and w_in == w_out
    head    1x1 conv (-> head width), BN, SiLU, global pool, dropout, linear
`effnet_config("effnet-b0")` is EfficientNet-B0's layout (Tan & Le 2019). Drop-connect is left out:
it changes training noise, not cost.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from frugalnn.cost.analytic import Complexity, Cx
from frugalnn.models.blocks import SqueezeExcite, init_weights, positive_ints


@dataclass
class EffNetConfig:
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    expansion_ratios: tuple[int, ...]
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    stem_width: int = 32
    head_width: int = 1280
    se_ratio: float = 0.25
    num_classes: int = 1000
    resolution: int = 224
    dropout: float = 0.0
    in_channels: int = 3
    name: str = field(default="effnet", compare=False)

    def __post_init__(self):
        self.depths = positive_ints("depths", self.depths)
        n = len(self.depths)
        for label in ("widths", "expansion_ratios", "kernels", "strides"):
            seq = positive_ints(label, getattr(self, label))
            if len(seq) != n:
                raise ValueError(f"{label}: expected {n} stages (one per depth), got {len(seq)}")
            setattr(self, label, seq)
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels: expected odd sizes ('same' padding), got {list(self.kernels)}")
        for label in ("stem_width", "head_width", "num_classes", "resolution", "in_channels"):
            positive_ints(label, [getattr(self, label)])
        if not 0.0 < self.se_ratio < 1.0:
            raise ValueError(f"se_ratio: expected a number in (0, 1), got {self.se_ratio!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a number in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "EffNetConfig":
        return cls(**d)

    def build(self) -> "EffNet":
        return EffNet(self)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        return torch.randn(batch, self.in_channels, self.resolution, self.resolution)

    def blocks(self):
        """(w_in, expansion, kernel, stride, w_out) of every MBConv block, in order."""
        w_in = self.stem_width
        for d, w, e, k, s in zip(self.depths, self.widths, self.expansion_ratios, self.kernels, self.strides):
            for i in range(d):
                yield (w_in if i == 0 else w), e, k, (s if i == 0 else 1), w
            w_in = w

    def complexity(self) -> Complexity:
        """MACs / params / acts of one image, layer by layer (must equal frugalnn.cost.profile)."""
        cx = Cx(self.resolution, self.resolution)
        cx.conv2d(self.in_channels, self.stem_width, 3, stride=2).norm2d(self.stem_width)
        for w_in, e, k, s, w_out in self.blocks():
            w_exp = w_in * e
            if w_exp != w_in:
                cx.conv2d(w_in, w_exp, 1).norm2d(w_exp)
            cx.conv2d(w_exp, w_exp, k, stride=s, groups=w_exp).norm2d(w_exp)
            with cx.branch():
                w_se = max(1, int(w_in * self.se_ratio))
                cx.pool_global().conv2d(w_exp, w_se, 1, bias=True).conv2d(w_se, w_exp, 1, bias=True)
            cx.conv2d(w_exp, w_out, 1).norm2d(w_out)
        cx.conv2d(self.widths[-1], self.head_width, 1).norm2d(self.head_width)
        cx.pool_global().linear(self.head_width, self.num_classes)
        return cx.result()


def _conv_bn_act(w_in: int, w_out: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> list:
    layers = [nn.Conv2d(w_in, w_out, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(w_out)]
    return layers + [nn.SiLU(inplace=True)] if act else layers


class MBConv(nn.Module):
    def __init__(self, w_in: int, expansion: int, k: int, stride: int, w_out: int, se_ratio: float):
        super().__init__()
        w_exp = w_in * expansion
        layers = _conv_bn_act(w_in, w_exp, 1) if w_exp != w_in else []
        layers += _conv_bn_act(w_exp, w_exp, k, stride, groups=w_exp)
        layers.append(SqueezeExcite(w_exp, max(1, int(w_in * se_ratio)), activation=nn.SiLU))
        layers += _conv_bn_act(w_exp, w_out, 1, act=False)
        self.f = nn.Sequential(*layers)
        self.skip = stride == 1 and w_in == w_out

    def forward(self, x):
        return x + self.f(x) if self.skip else self.f(x)


class EffNet(nn.Module):
    def __init__(self, config: EffNetConfig):
        super().__init__()
        if not isinstance(config, EffNetConfig):
            raise TypeError(f"config: expected EffNetConfig, got {type(config).__name__}")
        self.config = config
        self.stem = nn.Sequential(*_conv_bn_act(config.in_channels, config.stem_width, 3, 2))
        self.blocks = nn.Sequential(*[MBConv(*b, se_ratio=config.se_ratio) for b in config.blocks()])
        self.head = nn.Sequential(*_conv_bn_act(config.widths[-1], config.head_width, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.head_width, config.num_classes)
        init_weights(self)

    def forward(self, x):
        return self.fc(self.dropout(torch.flatten(self.pool(self.head(self.blocks(self.stem(x)))), 1)))


PRESETS = {
    "effnet-b0": dict(depths=(1, 2, 2, 3, 3, 4, 1), widths=(16, 24, 40, 80, 112, 192, 320),
                      expansion_ratios=(1, 6, 6, 6, 6, 6, 6), kernels=(3, 3, 5, 3, 5, 5, 3),
                      strides=(1, 2, 2, 2, 1, 2, 1), stem_width=32, head_width=1280, se_ratio=0.25),
}


def effnet_config(name: str, **overrides) -> EffNetConfig:
    """A preset by name ('effnet-b0'); `overrides` are EffNetConfig fields (resolution=..., ...)."""
    if name not in PRESETS:
        raise ValueError(f"unknown EfficientNet preset {name!r}; known: {', '.join(PRESETS)}")
    return EffNetConfig(**{**PRESETS[name], "name": name, **overrides})
