"""MACs and params of a subnet, counted by frugalnn.cost.profile on the extracted model.

The paper's convention (the authors' `count_ops` in mechanicalsea/sugar): conv and linear
multiply-accumulates plus 2 per element for every BatchNorm (scale and shift folded as two ops), nothing for
ReLU, tanh, softmax, sigmoid, pooling sums or the SE mean, at 301 frames (3 s at a 10 ms hop, centred
frames). That is exactly profile's `convention="fvcore"` on a model in eval mode (fvcore counts an affine
BN in inference as 2 per element). With it the paper's Base / Mobile / Small come to 1,445,211,648 /
570,984,384 / 204,072,768: 1.45 G / 571 M / 204 M as printed. The plain "macs" convention (no BN) gives
1.442 G / 569.2 M / 203.0 M, which does not round to the paper's figures.
"""
from __future__ import annotations

import torch

from frugalnn.cost import Profiler

FRAMES = 301
CONVENTION = "fvcore"


def macs(model: torch.nn.Module, frames: int = FRAMES, in_feats: int = 80, convention: str = CONVENTION) -> int:
    """MACs of one utterance of `frames` frames through `model` (eval mode, no values computed)."""
    return int(profile(model, frames, in_feats, convention).macs)


def profile(model: torch.nn.Module, frames: int = FRAMES, in_feats: int = 80, convention: str = CONVENTION):
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise ValueError(f"frames: expected an int >= 1, got {frames!r}")
    was = model.training
    model.eval()
    try:
        return Profiler(convention=convention, fake=True)(model, torch.zeros(1, in_feats, frames))
    finally:
        model.train(was)


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def analytic_macs(cfg, frames: int = FRAMES, in_feats: int = 80, embed: int = 192, attention: int = 128) -> int:
    """The same count as `macs(TDNN(cfg))`, in closed form (the search calls it thousands of times; a test
    checks it against frugalnn.cost.profile). Convs and linears: in x out x kernel per output frame; each
    BatchNorm: 2 per element."""
    from frugalnn.tdnn.config import SCALE, SubnetConfig

    cfg = SubnetConfig.of(cfg)
    t, c = frames, cfg.widths[0]
    total = in_feats * c * cfg.kernels[0] * t + 2 * c * t
    for m, k in zip(cfg.widths[1:], cfg.kernels[1:]):
        w = m // SCALE
        total += (c * m + 2 * m) * t                       # first 1x1 + BN
        total += (SCALE - 1) * (w * w * k + 2 * w) * t     # Res2Net convs + BNs
        total += (m * c + 2 * c) * t                       # last 1x1 + BN
        total += 2 * c * (c // 4)                          # SE
    total += cfg.depth * c * cfg.cat * t                   # cat conv
    total += 2 * cfg.cat * attention * t                   # attention 1x1 convs
    total += 2 * 2 * cfg.cat + 2 * cfg.cat * embed + 2 * embed
    return total


def analytic_params(cfg, in_feats: int = 80, embed: int = 192, attention: int = 128) -> int:
    from frugalnn.tdnn.config import SCALE, SubnetConfig

    cfg = SubnetConfig.of(cfg)
    c = cfg.widths[0]
    total = in_feats * c * cfg.kernels[0] + 2 * c
    for m, k in zip(cfg.widths[1:], cfg.kernels[1:]):
        w = m // SCALE
        total += c * m + 2 * m + (SCALE - 1) * (w * w * k + 2 * w) + m * c + 2 * c
        total += c * (c // 4) + c // 4 + (c // 4) * c + c
    total += cfg.depth * c * cfg.cat + cfg.cat * attention + attention + attention * cfg.cat + cfg.cat
    total += 2 * 2 * cfg.cat + 2 * cfg.cat * embed + embed + 2 * embed
    return total
