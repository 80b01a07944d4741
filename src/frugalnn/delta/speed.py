"""Wall-clock of delta inference against torch, batch 1, on whole clips (reset + every frame).

    fns = contenders(dense_cnn, streams, clip)   # name -> callable running the clip once
    t = time_interleaved(fns, ...)               # frugalnn.bench.harness
    crossover(points, t_torch)                   # density where the engine breaks even with torch

torch runs the dense per-frame CNN in eval mode under no_grad, one frame at a time, contiguous and
channels-last (the faster of the two is the baseline a user would pick).
"""
from __future__ import annotations

import numpy as np
import torch

TORCH = "torch dense per frame"
TORCH_CL = "torch dense per frame, channels-last"


def torch_clip_fn(cnn, clip: np.ndarray, channels_last: bool = False):
    frames = [torch.from_numpy(np.ascontiguousarray(f))[None] for f in clip]
    if channels_last:
        frames = [f.contiguous(memory_format=torch.channels_last) for f in frames]
        cnn = _channels_last_copy(cnn)

    def run():
        with torch.no_grad():
            for f in frames:
                cnn(f)
    return run


def _channels_last_copy(cnn):
    import copy

    return copy.deepcopy(cnn).to(memory_format=torch.channels_last).eval()


def engine_clip_fn(stream, clip: np.ndarray, dense: bool = False):
    frames = [np.ascontiguousarray(f, np.float32) for f in clip]

    def run():
        stream.reset()
        for f in frames:
            stream.push(f, dense)
    return run


def crossover(points: list[tuple[float, float]], t_torch: float) -> float | None:
    """Density at which a least-squares line time = a + b * density through `points` (density, seconds)
    meets torch's time; None when the line does not rise or fewer than two points."""
    if len(points) < 2:
        return None
    d, t = np.array(points, float).T
    if np.ptp(d) == 0:
        return None
    b, a = np.polyfit(d, t, 1)
    if b <= 0:
        return None
    return float((t_torch - a) / b)
