"""Latency of a subnet on this CPU from a lookup table of timed layers (Once-for-All's LatencyEstimator).

The table holds, for one utterance of `frames` frames at `threads` threads, the fastest of `repeats` timings (robust to other load on shared cores) of each layer
kind at each shape the search can pick: the first layer (width, kernel), block i (width, middle width,
kernel; its residual adds included) and the head (depth, width, cat: concatenation, cat conv, attentive
pooling, embedding). A subnet's latency is the sum of its entries; `check` compares that sum with timing
the whole extracted subnet.
"""
from __future__ import annotations

import itertools
import time

import torch
import torch.nn as nn

from frugalnn.bench.harness import calibrate
from frugalnn.tdnn.config import SubnetConfig, SupernetConfig
from frugalnn.tdnn.nn import TDNN, Block, ConvReLUBN
from frugalnn.threads import torch_threads


def _fastest_time(fn, repeats: int, warmup: int = 2, min_sample_s: float = 0.02) -> float:
    """Per-call time: calls batched into samples of >= min_sample_s, the fastest of `repeats` samples (the
    least-disturbed one: other processes share these cores)."""
    for _ in range(warmup):
        fn()
    n = calibrate(fn, min_sample_s)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        ts.append((time.perf_counter() - t) / n)
    return min(ts)


class _Head(nn.Module):
    def __init__(self, depth, width, cat, embed, attention):
        super().__init__()
        t = TDNN(SubnetConfig(depth, (width,) * (depth + 1), (1,) * (depth + 1), cat), embed=embed, attention=attention)
        self.t = t

    def forward(self, outs):
        import torch.nn.functional as F

        from frugalnn.tdnn.nn import stats_pool
        t = self.t
        out = F.relu(t.catconv(torch.cat(outs, dim=1)))
        return t.bnembed(t.linear(t.bnpool(stats_pool(out, t.att1, t.att2))))


class LatencyTable:
    def __init__(self, config: SupernetConfig, frames: int = 301, threads: int = 1, repeats: int = 7,
                 min_sample_s: float = 0.005):
        self.config, self.frames, self.threads, self.repeats = config, frames, threads, repeats
        self.min_sample_s = min_sample_s
        self.table: dict[tuple, float] = {}

    def _time(self, key) -> float:
        c, t = self.config, self.frames
        kind = key[0]
        with torch.no_grad():
            if kind == "layer1":
                _, w, k = key
                m = ConvReLUBN(c.in_feats, w, k).eval()
                x = torch.randn(1, c.in_feats, t)
                fn = lambda: m(x)
            elif kind == "block":
                _, i, w, mid, k = key
                m = Block(w, mid, k, i + 2).eval()
                x, total = torch.randn(1, w, t), torch.randn(1, w, t)

                def fn():
                    out = m(x) + total
                    return total + out
            else:
                _, d, w, cat = key
                m = _Head(d, w, cat, c.embed, c.attention).eval()
                outs = [torch.randn(1, w, t) for _ in range(d)]
                fn = lambda: m(outs)
            with torch_threads(self.threads):
                return _fastest_time(fn, self.repeats, min_sample_s=self.min_sample_s)

    def keys(self, cfg: SubnetConfig) -> list[tuple]:
        cfg = SubnetConfig.of(cfg)
        w = cfg.widths[0]
        return ([("layer1", w, cfg.kernels[0])]
                + [("block", i, w, cfg.widths[i + 1], cfg.kernels[i + 1]) for i in range(cfg.depth)]
                + [("head", cfg.depth, w, cfg.cat)])

    def fill(self, grid: bool = True, progress=None) -> int:
        """Time every entry of the coarse grid (width and cat choices); returns how many were timed."""
        c = self.config
        ws, cats = c.width_choices, c.cat_choices
        keys = [("layer1", w, k) for w in ws for k in c.kernels]
        keys += [("block", i, w, m, k) for i in range(c.blocks) for w, m, k in itertools.product(ws, ws, c.kernels)]
        keys += [("head", d, w, cat) for d in c.depths for w in ws for cat in cats]
        todo = [k for k in keys if k not in self.table]
        for n, k in enumerate(todo):
            self.table[k] = self._time(k)
            if progress and n % 50 == 0:
                progress(n / len(todo))
        return len(todo)

    def predict(self, cfg) -> float:
        """Seconds for one utterance; entries not yet in the table are timed now."""
        total = 0.0
        for k in self.keys(cfg):
            if k not in self.table:
                self.table[k] = self._time(k)
            total += self.table[k]
        return total

    def measure(self, cfg, repeats: int | None = None) -> float:
        """End-to-end median time of the extracted subnet (same frames, same threads)."""
        m = TDNN(SubnetConfig.of(cfg), self.config.in_feats, self.config.embed, self.config.attention).eval()
        x = torch.randn(1, self.config.in_feats, self.frames)
        with torch.no_grad(), torch_threads(self.threads):
            return _fastest_time(lambda: m(x), repeats or self.repeats, min_sample_s=self.min_sample_s)

    def check(self, cfgs) -> list[tuple[SubnetConfig, float, float]]:
        """(cfg, LUT estimate, end-to-end measurement) per config."""
        return [(SubnetConfig.of(c), self.predict(c), self.measure(c)) for c in cfgs]
