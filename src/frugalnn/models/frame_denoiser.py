"""A small per-frame convolutional denoising autoencoder for grey video frames (noisy frame -> clean frame).

    enc1   conv3x3 1->c, ReLU
    enc2   conv3x3 c->c, ReLU
    mid    conv3x3 c->b, ReLU          the bottleneck (b < c channels)
    dec1   conv3x3 b->c, ReLU
    out    conv3x3 c->1                 the clean frame (no activation)

All convs are stride 1 with zero padding 1, so the model is fully convolutional: it trains on crops
and runs on whole frames of any size. Why stride 1 and a channel bottleneck instead of a spatial one
(strided conv down, upsampling up): the delta-inference engine (csrc/delta) has convolutions, ReLU,
residual adds and global pooling, and no upsampling or transposed convolution, so a model built from
what it runs can be checked against it frame by frame. There is no input-to-output skip: with
`DeltaConfig(placement="input+activations")` the input is quantized for every consumer in the engine
but only for the first conv in torch, and a skip would make the two disagree.

Every activation is its own nn.ReLU (convert_ places a Delta Activation Layer after each one) and the
model traces with torch.fx (frugalnn.delta.compile reads the graph).
"""
from __future__ import annotations

import torch
from torch import nn


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU())


class FrameDenoiser(nn.Module):
    def __init__(self, channels: int = 16, bottleneck: int = 8):
        for name, v in (("channels", channels), ("bottleneck", bottleneck)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        super().__init__()
        self.in_channels = 1
        self.enc1 = _stage(1, channels)
        self.enc2 = _stage(channels, channels)
        self.mid = _stage(channels, bottleneck)
        self.dec1 = _stage(bottleneck, channels)
        self.out = nn.Conv2d(channels, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dec1(self.mid(self.enc2(self.enc1(x)))))


def frame_denoiser(channels: int = 16, bottleneck: int = 8) -> FrameDenoiser:
    return FrameDenoiser(channels, bottleneck)
