"""The ECAPA-style TDNN of EfficientTDNN as a plain model (`TDNN(cfg)`) and its elastic supernet.

Shapes: input fbank (B, 80, T) -> embedding (B, 192). Layout, following the authors' supernet:
  layer1   conv k0 (80 -> C) + ReLU + BN
  block i  1x1 conv (C -> M_i) + ReLU + BN; Res2Net: 8 splits of M_i/8, 7 convs k_i with dilation i+2 (+ReLU+BN),
           split j adds split j-1's output, the 8th split passes through; 1x1 conv (M_i -> C) + ReLU + BN; SE
           (C -> C/4 -> C). Its input is the previous block's output and it adds the running sum of all
           earlier outputs (the authors' dense residual).
  cat      1x1 conv over the concatenated block outputs (d*C -> cat) + ReLU
  pool     attentive statistics pooling (cat -> 128 -> cat attention, weighted mean and std) + BN(2*cat)
  embed    linear (2*cat -> 192) + BN
Channels of a Res2Net middle layer are stored interleaved (channel j belongs to split j % 8) so that a
narrower width is a prefix of every tensor: first M/8 of each split.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from frugalnn.tdnn.config import SCALE, SubnetConfig

NUMS = SCALE - 1  # Res2Net convs per block (the last split passes through)


class ConvReLUBN(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, padding=(kernel - 1) // 2 * dilation, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x):
        return self.bn(F.relu(self.conv(x)))


def res2(x: torch.Tensor, convs) -> torch.Tensor:
    """Res2Net over interleaved splits: x (B, 8*w, T) viewed as (B, w, 8, T)."""
    b, m, t = x.shape
    xs = x.view(b, m // SCALE, SCALE, t)
    out, sp = [], None
    for i, conv in enumerate(convs):
        sp = conv(xs[:, :, i] if sp is None else xs[:, :, i] + sp)
        out.append(sp)
    out.append(xs[:, :, NUMS])
    return torch.stack(out, dim=2).reshape(b, m, t)


def se(x: torch.Tensor, reduce, expand) -> torch.Tensor:
    s = torch.sigmoid(expand(F.relu(reduce(x.mean(dim=2)))))
    return x * s.unsqueeze(2)


def stats_pool(x: torch.Tensor, linear1, linear2) -> torch.Tensor:
    alpha = torch.softmax(linear2(torch.tanh(linear1(x))), dim=2)
    mean = torch.sum(alpha * x, dim=2)
    var = torch.sum(alpha * x * x, dim=2) - mean * mean
    return torch.cat([mean, torch.sqrt(var.clamp(min=1e-9))], dim=1)


class Block(nn.Module):
    def __init__(self, channels: int, mid: int, kernel: int, dilation: int):
        super().__init__()
        self.first = ConvReLUBN(channels, mid)
        self.res2 = nn.ModuleList(ConvReLUBN(mid // SCALE, mid // SCALE, kernel, dilation) for _ in range(NUMS))
        self.last = ConvReLUBN(mid, channels)
        self.se_reduce = nn.Linear(channels, channels // 4)
        self.se_expand = nn.Linear(channels // 4, channels)

    def forward(self, x):
        return se(self.last(res2(self.first(x), self.res2)), self.se_reduce, self.se_expand)


class TDNN(nn.Module):
    """One fixed architecture `cfg` (standalone; what `Supernet.get_active_subnet` returns)."""

    def __init__(self, cfg, in_feats: int = 80, embed: int = 192, attention: int = 128):
        super().__init__()
        cfg = SubnetConfig.of(cfg)
        self.cfg = cfg
        c = cfg.widths[0]
        self.layer1 = ConvReLUBN(in_feats, c, cfg.kernels[0])
        self.blocks = nn.ModuleList(Block(c, cfg.widths[i + 1], cfg.kernels[i + 1], i + 2) for i in range(cfg.depth))
        self.catconv = nn.Conv1d(cfg.depth * c, cfg.cat, 1, bias=False)
        self.att1 = nn.Conv1d(cfg.cat, attention, 1)
        self.att2 = nn.Conv1d(attention, cfg.cat, 1)
        self.bnpool = nn.BatchNorm1d(2 * cfg.cat)
        self.linear = nn.Linear(2 * cfg.cat, embed)
        self.bnembed = nn.BatchNorm1d(embed)

    def forward(self, x):
        out = self.layer1(x)
        total, cats = out, []
        for block in self.blocks:
            out = block(out) + total
            total = total + out
            cats.append(out)
        out = F.relu(self.catconv(torch.cat(cats, dim=1)))
        out = self.bnpool(stats_pool(out, self.att1, self.att2))
        return self.bnembed(self.linear(out))
