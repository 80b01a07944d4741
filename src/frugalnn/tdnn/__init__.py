"""EfficientTDNN (Wang et al., TASLP'22): an elastic ECAPA-style speaker-embedding supernet, trained by
progressive shrinking, searched with an accuracy predictor and an evolutionary search under MAC, params and
latency budgets.

    net = frugalnn.tdnn.Supernet(frugalnn.tdnn.SupernetConfig())
    net.set_active_subnet(frugalnn.tdnn.MOBILE)          # (3, [384, 256, 256, 256], [5, 3, 3, 3], 768)
    sub = net.get_active_subnet()                        # a standalone nn.Module, same outputs
    frugalnn.tdnn.macs(sub)                              # 570,984,384 at 301 frames: the paper's 571 M
    python -m frugalnn.tdnn.train --quick                # progressive shrinking (also under torchrun)

docs/tdnn.md has the measurements.
"""
from __future__ import annotations

from frugalnn.tdnn.config import BASE, MOBILE, PAPER, SMALL, SubnetConfig, SupernetConfig

_LAZY = {
    "Supernet": "frugalnn.tdnn.supernet",
    "TDNN": "frugalnn.tdnn.nn",
    "macs": "frugalnn.tdnn.cost",
    "fbank": "frugalnn.tdnn.features",
    "Fbank": "frugalnn.tdnn.features",
    "eer": "frugalnn.tdnn.metrics",
    "min_dcf": "frugalnn.tdnn.metrics",
}


def __getattr__(name: str):
    # torch is imported only when a torch-side name is asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'frugalnn.tdnn' has no attribute {name!r}")


__all__ = ["BASE", "MOBILE", "PAPER", "SMALL", "SubnetConfig", "SupernetConfig", *sorted(_LAZY)]
