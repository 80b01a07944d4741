"""The refinement recipe on a tiny run: baseline through frugalnn.train.fit, then the delta fine-tune."""
import math

import torch

from frugalnn.delta import train as T
from frugalnn.delta.nn import delta_layers

TINY = T.Sizes(n_train=24, n_test=3, test_frames=4, base_epochs=1, delta_epochs=1, batch=8)


def test_baseline_then_delta_finetune():
    data = T.make_data(TINY, seed=0)
    assert data.train_x.shape == (24, 2, 1, 64, 64) and data.test_x.shape == (3, 4, 1, 64, 64)
    base, r0 = T.train_baseline(data, TINY)
    assert r0.steps == 6 and all(math.isfinite(l) for _, l in r0.losses())
    assert not delta_layers(base) and 0 < T.spatial_density(base, data.test_x) <= 1
    before = [p.detach().clone() for p in base.parameters()]
    cnn, r1 = T.finetune_delta(base, data, rate=3.0, sizes=TINY)
    assert len(delta_layers(cnn)) == 6 and r1.steps == 3
    assert all(torch.equal(a, b) for a, b in zip(before, base.parameters()))   # the baseline is left alone
    moved = [m for m in delta_layers(cnn) if abs(float(m.step.mean().detach()) - TINY.init_step) > 1e-6]
    assert moved, "the quantization steps did not learn"
    acc = T.accuracy(T.clip_logits(cnn, data.test_x), data.test_y)
    assert 0 <= acc["clip_accuracy"] <= 100 and 0 <= acc["frame_accuracy"] <= 100
    dens = T.delta_density(cnn, data.test_x)
    assert 0 <= dens["all"] <= 1 and len(dens) == 7
