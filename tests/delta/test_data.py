"""Moving-image clips: shapes, determinism, labels of real images, smooth motion."""
import numpy as np
import pytest

from frugalnn.data.moving import moving_clips, source_images


def test_clips_are_deterministic_and_labelled():
    a, ya, what = moving_clips(3, frames=5, seed=1)
    b, yb, _ = moving_clips(3, frames=5, seed=1)
    assert a.shape == (3, 5, 1, 64, 64) and a.dtype == np.float32 and np.array_equal(a, b)
    assert np.array_equal(ya, yb) and ya.dtype == np.int64 and set(ya) <= set(range(10))
    assert "synthetic motion over real images" in what
    c, _, _ = moving_clips(3, frames=5, seed=2)
    assert not np.array_equal(a, c)


def test_motion_is_smooth_and_the_image_is_there():
    clips, _, _ = moving_clips(4, frames=16, seed=0, noise_std=0.0, jitter_prob=0.0)
    diffs = np.abs(np.diff(clips, axis=1)).mean(axis=(2, 3, 4))
    full = np.abs(clips[:, :1] - clips[:, 1:][:, ::-1][:, :1]).mean()
    assert diffs.max() < 0.1 and clips.max() > 0.5   # consecutive frames are close; a bright object is present
    assert full > 0


def test_the_images_are_real():
    x, y, desc = source_images("test")
    assert x.dtype == np.uint8 and x.shape[1:] == (28, 28) and len(x) == len(y) >= 1000
    assert "Fashion-MNIST" in desc or "MNIST-5k" in desc


def test_bad_arguments():
    with pytest.raises(ValueError, match="n:"):
        moving_clips(-1)
    with pytest.raises(ValueError, match="frames"):
        moving_clips(1, frames=0)
    with pytest.raises(ValueError, match="split"):
        moving_clips(1, split="val")
