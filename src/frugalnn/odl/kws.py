"""The keyword-spotting scenario for DS-CNN: training words synthesised by Debian's espeak-ng (many
voices, speeds and pitches; synthetic), tested on real recordings of the same words from Debian's
asterisk-core-sounds-en-wav (one speaker, "Allison", 8 kHz), 49x10 MFCCs from python_speech_features
(40 ms windows, 20 ms hop over 1 s at 8 kHz; a maintained library, not hand-rolled). DS-CNN is
pretrained in torch on the digits zero..eight and learns "nine" on the engine, sample by sample, with
a replay buffer. The test set is small: 10 recordings, each in several noise / shift variants."""
from __future__ import annotations

import io
import shutil
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from frugalnn.models import tiny

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NEW = 9
SR = 8000
ASTERISK = Path("/usr/share/asterisk/sounds/en_US_f_Allison/digits")
VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029")
VARIANTS = ("", "+m1", "+m3", "+f2", "+f4")
QUICK = dict(per_word=48, test_variants=10, pre_epochs=12, passes=2, replay_every=1, lr=0.002)
FULL = dict(per_word=160, test_variants=30, pre_epochs=20, passes=2, replay_every=1, lr=0.002)


class KwsDataMissing(RuntimeError):
    pass


def check_available() -> None:
    missing = []
    if shutil.which("espeak-ng") is None:
        missing.append("espeak-ng (apt-get install espeak-ng)")
    if not (ASTERISK / "9.wav").is_file():
        missing.append(f"{ASTERISK} (apt-get install asterisk-core-sounds-en-wav)")
    try:
        import python_speech_features  # noqa: F401
        import scipy  # noqa: F401
    except ImportError:
        missing.append("python_speech_features + scipy (pip install python_speech_features==0.6 scipy)")
    if missing:
        raise KwsDataMissing("missing: " + "; ".join(missing))


def _read_wav(data) -> tuple[np.ndarray, int]:
    with wave.open(data) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768.0
        return x, w.getframerate()


def _to_8k(x: np.ndarray, sr: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    if sr == SR:
        return x
    g = gcd(SR, sr)
    return resample_poly(x, SR // g, sr // g).astype(np.float32)


def synth(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                         capture_output=True, timeout=30, check=True).stdout
    return _to_8k(*_read_wav(io.BytesIO(out)))


def place(x: np.ndarray, rng, snr_db: float | None) -> np.ndarray:
    """The word trimmed of silence, at a random offset in 1 s, with white noise at snr_db."""
    loud = np.nonzero(np.abs(x) > 0.02 * np.abs(x).max())[0]
    x = x[loud[0]:loud[-1] + 1][:SR] if len(loud) else x[:SR]
    out = np.zeros(SR, np.float32)
    start = int(rng.integers(0, SR - len(x) + 1))
    out[start:start + len(x)] = x
    if snr_db is not None:
        p = float((x ** 2).mean()) + 1e-12
        out += rng.standard_normal(SR).astype(np.float32) * np.sqrt(p / 10 ** (snr_db / 10))
    return out


def mfcc(sig: np.ndarray) -> np.ndarray:
    from python_speech_features import mfcc as psf_mfcc

    m = psf_mfcc(sig, samplerate=SR, winlen=0.04, winstep=0.02, numcep=10, nfilt=40, nfft=512, appendEnergy=True)
    assert m.shape == (49, 10), m.shape
    return m.astype(np.float32)


def dataset(sizes: dict, seed: int = 0):
    """(train_x [N, 1, 49, 10], train_y, test_x, test_y), normalised by the training statistics."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, word in enumerate(WORDS):
        for _ in range(sizes["per_word"]):
            voice = VOICES[rng.integers(len(VOICES))] + VARIANTS[rng.integers(len(VARIANTS))]
            raw = synth(word, voice, int(rng.integers(120, 230)), int(rng.integers(25, 80)))
            xs.append(mfcc(place(raw, rng, float(rng.uniform(5, 30)))))
            ys.append(label)
    tx, ty = [], []
    for label in range(len(WORDS)):
        raw, sr = _read_wav(str(ASTERISK / f"{label}.wav"))
        raw = _to_8k(raw, sr)
        for v in range(sizes["test_variants"]):
            tx.append(mfcc(place(raw, rng, None if v == 0 else float(rng.uniform(10, 30)))))
            ty.append(label)
    x, t = np.stack(xs), np.stack(tx)
    mean, std = x.mean(axis=(0, 1)), x.std(axis=(0, 1)) + 1e-6
    norm = lambda a: torch.from_numpy(((a - mean) / std)[:, None].astype(np.float32))  # noqa: E731
    return norm(x), torch.tensor(ys), norm(t), torch.tensor(ty)


@torch.no_grad()
def accuracy(forward, x, y) -> dict:
    pred = torch.cat([forward(x[i:i + 1]).argmax(1) for i in range(len(x))])
    old, new = y != NEW, y == NEW
    return {"old": 100.0 * float((pred[old] == y[old]).float().mean()),
            "new": 100.0 * float((pred[new] == y[new]).float().mean()),
            "all": 100.0 * float((pred == y).float().mean())}


def run(quick: bool = True, seed: int = 0) -> dict:
    import frugalnn.odl as odl
    from frugalnn.odl.scenario import open_new_classes
    from frugalnn.train import fit

    check_available()
    sizes = QUICK if quick else FULL
    t0 = time.time()
    x, y, tx, ty = dataset(sizes, seed)
    synth_s = time.time() - t0
    old = y != NEW
    torch.manual_seed(seed)
    model = tiny.dscnn(num_classes=len(WORDS))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    fit(model, opt, (x[old], y[old]), F.cross_entropy, batch_size=32, epochs=sizes["pre_epochs"], seed=seed,
        progress=False, resume=False)
    model.eval()
    out = {"sizes": sizes, "synth_s": synth_s, "n_train": len(y), "n_test": len(ty),
           "before": accuracy(model, tx, ty)}
    g = np.random.default_rng(seed)
    new_idx, old_idx = np.nonzero((y == NEW).numpy())[0], np.nonzero(old.numpy())[0]
    stream, seen = [], 0
    for _ in range(sizes["passes"]):
        for i in g.permutation(new_idx):
            stream.append(int(i))
            seen += 1
            if seen % sizes["replay_every"] == 0:
                stream.append(int(g.choice(old_idx)))
    for dt in ("fp32", "fp16"):
        eng = odl.compile(open_new_classes(model, (NEW,)), dtype=dt)
        times = []
        for i in stream:
            t = time.thread_time()
            eng.step(x[i:i + 1], int(y[i]), sizes["lr"])
            times.append(time.thread_time() - t)
        out[dt] = {**accuracy(eng.forward, tx, ty), "step_s": float(np.median(times)), "steps": len(stream)}
    return out
