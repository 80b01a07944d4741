"""Speaker verification of a model or of a supernet's subnet: embeddings, cosine scores, EER and minDCF."""
from __future__ import annotations

import numpy as np
import torch

from frugalnn.tdnn.metrics import cosine_scores, eer, min_dcf
from frugalnn.threads import torch_threads


@torch.no_grad()
def embed(model: torch.nn.Module, x: torch.Tensor, batch: int = 64) -> np.ndarray:
    was = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy()
    finally:
        model.train(was)


def verify(model: torch.nn.Module, trial_set, threads: int | None = None) -> dict:
    """{'eer': %, 'min_dcf': p_target 0.01} of cosine scoring on `trial_set` (no score normalization).
    threads=None keeps torch's current setting."""
    if threads is None:
        e = embed(model, trial_set.x)
    else:
        with torch_threads(threads):
            e = embed(model, trial_set.x)
    scores = cosine_scores(e, trial_set.trials)
    labels = trial_set.trials[:, 2]
    return {"eer": eer(scores, labels), "min_dcf": min_dcf(scores, labels, 0.01)}


def evaluate_subnet(supernet, cfg, data, part: str = "dev", calib_batches: int = 4, threads: int | None = None) -> dict:
    """Activate `cfg`, recalibrate its BN statistics on `calib_batches` batches of 64 training crops, verify
    on `part` ('dev' or 'test'). threads=None keeps torch's current setting."""
    if part not in ("dev", "test"):
        raise ValueError(f"part: expected 'dev' or 'test', got {part!r}")
    supernet.set_active_subnet(cfg)
    if threads is None:
        supernet.recalibrate_bn(data.calibration_batches(calib_batches))
    else:
        with torch_threads(threads):
            supernet.recalibrate_bn(data.calibration_batches(calib_batches))
    return verify(supernet.get_active_subnet().eval(), getattr(data, part), threads)
