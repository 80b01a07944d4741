"""fp16 accumulation error against the reduction length K (the paper's known weakness): relative
error of one dot-product-shaped matmul [16 x K] . [K x 64] against float64, for fp16 storage with
fp32 accumulation, fp16 accumulation (the paper's kernels) and torch .half() matmul, on the same
random operands. Rounding-error theory gives ~sqrt(K) growth for random-sign sums."""
from __future__ import annotations

import math

import numpy as np

from frugalnn.kernels import odl as kodl

KS = (16, 64, 256, 1024, 4096)


def error_vs_k(ks=KS, m: int = 16, n: int = 64, seeds: int = 3) -> dict:
    import torch

    out = {"K": list(ks), "fp16 storage, fp32 accumulation": [], "fp16 accumulation": [], "torch .half()": []}
    for k in ks:
        errs = {name: [] for name in out if name != "K"}
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            a = rng.standard_normal((m, k)).astype(np.float16)
            b = rng.standard_normal((k, n)).astype(np.float16)
            ref = a.astype(np.float64) @ b.astype(np.float64)
            scale = np.sqrt((ref ** 2).mean())
            got = {"fp16 storage, fp32 accumulation": kodl.matmul(a, b, acc16=False),
                   "fp16 accumulation": kodl.matmul(a, b, acc16=True),
                   "torch .half()": (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()}
            for name, g in got.items():
                errs[name].append(float(np.sqrt(((g.astype(np.float64) - ref) ** 2).mean()) / scale))
        for name, e in errs.items():
            out[name].append(float(np.mean(e)))
    return out


def slope(ks, errs) -> float:
    """Least-squares slope of log(error) against log(K)."""
    x, y = np.log(np.asarray(ks, float)), np.log(np.asarray(errs, float))
    return float(np.polyfit(x, y, 1)[0])


def relative_to_sqrt_k(ks, errs) -> list[float]:
    return [e / (math.sqrt(k) * 2.0 ** -11) for k, e in zip(ks, errs)]
