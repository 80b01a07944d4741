"""The elastic supernet: one set of weights, any `(depth, [widths], [kernels], cat)` inside its space.

    net = Supernet(SupernetConfig())                 # the paper's supernet: 4 blocks, 512 ch, kernel 5, cat 1536
    cfg = net.sample_active_subnet(random.Random(0)) # training: one random subnet per step
    net.set_active_subnet(MOBILE); net.recalibrate_bn(batches)
    sub = net.get_active_subnet()                    # a standalone TDNN with copied weights, same outputs

Elastic width keeps the first channels (the largest subnet's channel order; the Res2Net middle layers are
interleaved so that this is a prefix of every split, see nn.py). Elastic depth keeps the first blocks.
Elastic kernel is Once-for-All's: the centre of the larger kernel times a learned transform (5 -> 3: a 3x3
matrix, 3 -> 1: 1x1, identity at init), one per conv, applied in sequence.
"""
from __future__ import annotations

import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from frugalnn.tdnn.config import SCALE, SubnetConfig, SupernetConfig
from frugalnn.tdnn.nn import NUMS, TDNN, res2, stats_pool

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


def _key(path: str, big: int, small: int) -> str:
    return f"{path.replace('.', '_')}__{big}to{small}"


class Supernet(nn.Module):
    def __init__(self, config: SupernetConfig | None = None):
        super().__init__()
        config = config or SupernetConfig()
        if not isinstance(config, SupernetConfig):
            raise TypeError(f"config: expected a SupernetConfig, got {type(config).__name__}")
        self.config = config
        self.net = TDNN(config.largest(), config.in_feats, config.embed, config.attention)
        self.kernel_transforms = nn.ParameterDict()
        for path in self._elastic_convs():
            for big in range(config.kernel, 1, -2):
                self.kernel_transforms[_key(path, big, big - 2)] = nn.Parameter(torch.eye(big - 2))
        self.active = config.largest()

    def _elastic_convs(self):
        yield "layer1"
        for i in range(self.config.blocks):
            for j in range(NUMS):
                yield f"blocks.{i}.res2.{j}"

    # ---- the Once-for-All API -------------------------------------------------------------------------
    def set_active_subnet(self, cfg) -> SubnetConfig:
        self.active = self.config.check(cfg)
        return self.active

    def sample_active_subnet(self, rng: random.Random, **narrow) -> SubnetConfig:
        """Activate a random subnet; `narrow` (depths=, kernels=, width_ratios=) limits the space."""
        if not isinstance(rng, random.Random):
            raise TypeError(f"rng: expected a random.Random, got {type(rng).__name__}")
        return self.set_active_subnet(self.config.sample(rng, **narrow))

    @torch.no_grad()
    def get_active_subnet(self, cfg=None) -> TDNN:
        """A standalone TDNN for `cfg` (default: the active subnet) holding copies of the supernet's weights
        (kernel transforms folded in) and BN statistics; it computes what the supernet computes for `cfg`."""
        cfg = self.active if cfg is None else self.config.check(cfg)
        sub = TDNN(cfg, self.config.in_feats, self.config.embed, self.config.attention)
        state = self._subnet_state(cfg)
        missing = set(sub.state_dict()) ^ set(state)
        assert not missing, f"internal: state keys differ: {sorted(missing)}"
        sub.load_state_dict(state)
        return sub.train(self.training)

    @torch.no_grad()
    def recalibrate_bn(self, loader, max_batches: int | None = None) -> int:
        """Reset the BN statistics and re-estimate them for the active subnet as the plain average over
        `loader`'s batches (x, or (x, ...) tuples), as Once-for-All does before evaluating a subnet.
        Returns the number of batches used. Other subnets' statistics are overwritten too."""
        bns = [m for m in self.net.modules() if isinstance(m, nn.BatchNorm1d)]
        saved = [(m.momentum, m.training) for m in bns]
        was_training = self.training
        self.eval()
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        n = 0
        try:
            for batch in loader:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                self(x)
                n += 1
                if max_batches is not None and n >= max_batches:
                    break
        finally:
            for m, (mom, tr) in zip(bns, saved):
                m.momentum = mom
            self.train(was_training)
        if n == 0:
            raise ValueError("loader: yielded no batches to recalibrate BN on")
        return n

    # ---- slicing ----------------------------------------------------------------------------------
    def _conv_weight(self, path: str, conv: nn.Conv1d, cin, cout: int, k: int) -> torch.Tensor:
        w = conv.weight[:cout]
        w = w[:, :cin] if isinstance(cin, int) else w.index_select(1, cin)
        big = w.shape[2]
        if k > big:
            raise ValueError(f"kernels: {k} exceeds the supernet's kernel {big} at {path}")
        while big > k:  # centre crop, then the learned transform (Once-for-All)
            t = self.kernel_transforms[_key(path, big, big - 2)]
            w = torch.matmul(w[:, :, 1:-1], t)
            big -= 2
        return w

    def _bn(self, x: torch.Tensor, bn: nn.BatchNorm1d, idx) -> torch.Tensor:
        sel = (lambda t: t[:idx]) if isinstance(idx, int) else (lambda t: t.index_select(0, idx))
        rm, rv = sel(bn.running_mean), sel(bn.running_var)
        momentum = 0.0
        if bn.training:
            bn.num_batches_tracked.add_(1)
            momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        y = F.batch_norm(x, rm, rv, sel(bn.weight), sel(bn.bias), bn.training, momentum, bn.eps)
        if bn.training and not isinstance(idx, int):  # index_select copied: write the update back
            with torch.no_grad():
                bn.running_mean[idx] = rm
                bn.running_var[idx] = rv
        return y

    def _crb(self, x, path: str, mod, cin, cout: int, k: int, dilation: int) -> torch.Tensor:
        w = self._conv_weight(path, mod.conv, cin, cout, k)
        y = F.conv1d(x, w, None, padding=(k - 1) // 2 * dilation, dilation=dilation)
        return self._bn(F.relu(y), mod.bn, cout)

    def _cat_index(self, cfg: SubnetConfig) -> torch.Tensor:
        full = self.config.channels
        return torch.cat([i * full + torch.arange(cfg.widths[0]) for i in range(cfg.depth)])

    def _pool_index(self, cfg: SubnetConfig) -> torch.Tensor:
        return torch.cat([torch.arange(cfg.cat), self.config.cat + torch.arange(cfg.cat)])

    # ---- forward ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg, n = self.active, self.net
        c = cfg.widths[0]
        out = self._crb(x, "layer1", n.layer1, self.config.in_feats, c, cfg.kernels[0], 1)
        total, cats = out, []
        for i in range(cfg.depth):
            b, m, k = n.blocks[i], cfg.widths[i + 1], cfg.kernels[i + 1]
            w = m // SCALE
            h = self._crb(out, "", b.first, c, m, 1, 1)
            convs = [lambda t, j=j: self._crb(t, f"blocks.{i}.res2.{j}", b.res2[j], w, w, k, i + 2)
                     for j in range(NUMS)]
            h = self._crb(res2(h, convs), "", b.last, m, c, 1, 1)
            s = F.relu(F.linear(h.mean(dim=2), b.se_reduce.weight[:c // 4, :c], b.se_reduce.bias[:c // 4]))
            s = torch.sigmoid(F.linear(s, b.se_expand.weight[:c, :c // 4], b.se_expand.bias[:c]))
            out = h * s.unsqueeze(2) + total
            total = total + out
            cats.append(out)
        cw = self._conv_weight("catconv", n.catconv, self._cat_index(cfg), cfg.cat, 1)
        out = F.relu(F.conv1d(torch.cat(cats, dim=1), cw))
        att1 = lambda t: F.conv1d(t, n.att1.weight[:, :cfg.cat], n.att1.bias)
        att2 = lambda t: F.conv1d(t, n.att2.weight[:cfg.cat], n.att2.bias[:cfg.cat])
        pidx = self._pool_index(cfg)
        out = self._bn(stats_pool(out, att1, att2), n.bnpool, pidx)
        out = F.linear(out, n.linear.weight.index_select(1, pidx), n.linear.bias)
        return self._bn(out, n.bnembed, self.config.embed)

    # ---- extraction -------------------------------------------------------------------------------
    def _subnet_state(self, cfg: SubnetConfig) -> dict[str, torch.Tensor]:
        n, s = self.net, {}

        def bn(prefix, mod, idx):
            sel = (lambda t: t[:idx]) if isinstance(idx, int) else (lambda t: t.index_select(0, idx))
            for key in _BN_KEYS:
                s[f"{prefix}.{key}"] = sel(getattr(mod, key)).clone()
            s[f"{prefix}.num_batches_tracked"] = mod.num_batches_tracked.clone()

        def crb(prefix, path, mod, cin, cout, k):
            s[f"{prefix}.conv.weight"] = self._conv_weight(path, mod.conv, cin, cout, k).clone()
            bn(f"{prefix}.bn", mod.bn, cout)

        c = cfg.widths[0]
        crb("layer1", "layer1", n.layer1, self.config.in_feats, c, cfg.kernels[0])
        for i in range(cfg.depth):
            b, m, k, p = n.blocks[i], cfg.widths[i + 1], cfg.kernels[i + 1], f"blocks.{i}"
            crb(f"{p}.first", "", b.first, c, m, 1)
            for j in range(NUMS):
                crb(f"{p}.res2.{j}", f"{p}.res2.{j}", b.res2[j], m // SCALE, m // SCALE, k)
            crb(f"{p}.last", "", b.last, m, c, 1)
            s[f"{p}.se_reduce.weight"] = b.se_reduce.weight[:c // 4, :c].clone()
            s[f"{p}.se_reduce.bias"] = b.se_reduce.bias[:c // 4].clone()
            s[f"{p}.se_expand.weight"] = b.se_expand.weight[:c, :c // 4].clone()
            s[f"{p}.se_expand.bias"] = b.se_expand.bias[:c].clone()
        s["catconv.weight"] = self._conv_weight("catconv", n.catconv, self._cat_index(cfg), cfg.cat, 1).clone()
        s["att1.weight"] = n.att1.weight[:, :cfg.cat].clone()
        s["att1.bias"] = n.att1.bias.clone()
        s["att2.weight"] = n.att2.weight[:cfg.cat].clone()
        s["att2.bias"] = n.att2.bias[:cfg.cat].clone()
        pidx = self._pool_index(cfg)
        bn("bnpool", n.bnpool, pidx)
        s["linear.weight"] = n.linear.weight.index_select(1, pidx).clone()
        s["linear.bias"] = n.linear.bias.clone()
        bn("bnembed", n.bnembed, self.config.embed)
        return s
