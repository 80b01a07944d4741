"""Pieces of `frugalnn report --only delta` on small inputs (the full run lives in the report)."""
import numpy as np
import torch

import frugalnn
from frugalnn.delta import experiment, speed
from frugalnn.delta.engine import compile as compile_stream
from frugalnn.delta.nn import DeltaConfig
from frugalnn.models.frame_cnn import frame_cnn
from frugalnn.report.registry import registered
from frugalnn.techniques import BY_NAME


def test_registered_and_built():
    assert "delta_sparsity" in registered() and "delta_video" in registered() and BY_NAME["delta"].status == "built"


def test_noise_floor():
    assert abs(experiment.noise_pp(80.0, 100) - 4.0) < 1e-9 and experiment.noise_pp(100.0, 5) == 0.0


def test_engine_eval_counts_density_macs_and_accuracy():
    torch.manual_seed(0)
    cnn = frugalnn.convert_(frame_cnn(widths=(4, 8, 8)), DeltaConfig(init_step=0.2)).eval()
    stream = compile_stream(cnn, (1, 64, 64))
    from frugalnn.data.moving import moving_clips

    clips, labels, _ = moving_clips(2, frames=3, seed=0)
    r = experiment.engine_eval(stream, clips, labels, experiment._activation_layers(stream))
    assert 0 <= r["density"] <= 1 and 0 < r["first_macs"] <= stream.dense_macs and r["macs"] < r["first_macs"]
    assert r["logits"].shape == (2, 3, 10) and 0 <= r["clip_accuracy"] <= 100
    assert experiment._activation_layers(stream)[0] == 0 and len(experiment._activation_layers(stream)) == 6


def test_crossover():
    assert abs(speed.crossover([(0.1, 1.0), (1.0, 10.0)], 5.0) - 0.5) < 1e-9   # time = 10 x density
    assert speed.crossover([(0.1, 1.0)], 5.0) is None
    assert speed.crossover([(0.1, 2.0), (1.0, 1.0)], 5.0) is None


def test_speed_contenders_run():
    cnn = frame_cnn(widths=(4, 8, 8)).eval()
    clip = np.zeros((2, 1, 64, 64), np.float32)
    speed.torch_clip_fn(cnn, clip)()
    speed.torch_clip_fn(cnn, clip, channels_last=True)()
    stream = compile_stream(cnn, (1, 64, 64))
    speed.engine_clip_fn(stream, clip)()
    speed.engine_clip_fn(stream, clip, dense=True)()
    assert stream.frames == 2


def test_the_experiment_end_to_end_on_a_tiny_run(monkeypatch):
    from frugalnn.delta import train as T
    from frugalnn.report import Context

    tiny = T.Sizes(n_train=16, n_test=4, test_frames=3, base_epochs=1, delta_epochs=1, batch=8, rates=(1.0,))
    monkeypatch.setattr(experiment, "QUICK", tiny)
    monkeypatch.setattr(experiment, "THRESHOLDS", (0.1, 0.4))
    r = experiment.delta_sparsity(Context(quick=True))
    by = {row.metric: row for row in r.rows}
    assert by["engine output vs dense evaluation of the quantized network (max abs difference, one 3-frame clip)"] \
        .verdict == "reproduced"
    assert not any("real" in row.metric for row in r.rows)      # the real-video task is delta_video
    assert len(r.tables) == 4 and len(r.figures) == 1
