"""Waveform augmentation for training: additive noise (white, or babble from other training utterances),
speed perturbation (Kaldi-style resampling: tempo and pitch change together) and reverberation.

Reverberation uses a simple synthetic room impulse response: a unit direct path followed by exponentially
decaying Gaussian noise whose decay gives the drawn RT60 (energy falls 60 dB in RT60 seconds) -- the
classic stochastic tail model (Polack 1988). A room simulator (pyroomacoustics) would add a compiled
dependency for little benefit on synthetic speech; this is the documented simple RIR.
"""
from __future__ import annotations

import numpy as np

SR = 16000
KINDS = ("noise", "babble", "speed", "reverb")


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float, noise: np.ndarray | None = None) -> np.ndarray:
    if noise is None:
        noise = rng.standard_normal(len(x)).astype(np.float32)
    else:
        noise = np.resize(noise, len(x)).astype(np.float32)
    px, pn = float(np.mean(x * x)) + 1e-12, float(np.mean(noise * noise)) + 1e-12
    return (x + noise * np.sqrt(px / (pn * 10 ** (snr_db / 10)))).astype(np.float32)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    from fractions import Fraction

    from scipy.signal import resample_poly

    f = Fraction(factor).limit_denominator(20)
    return resample_poly(x, f.denominator, f.numerator).astype(np.float32)


def rir(rng: np.random.Generator, rt60: float, sr: int = SR) -> np.ndarray:
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    h = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000): -60 dB at t = rt60
    h[0] = 1.0 / 0.3  # direct path above the tail
    return (h / np.sqrt(np.sum(h * h))).astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator, rt60: float) -> np.ndarray:
    from scipy.signal import fftconvolve

    return fftconvolve(x, rir(rng, rt60))[: len(x)].astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, kind: str, babble: list[np.ndarray] | None = None) -> np.ndarray:
    """One augmentation of `kind`, its strength drawn from rng (SNR 5-20 dB, speed 0.9/1.1, RT60 0.2-0.8 s)."""
    if kind == "noise":
        return add_noise(x, rng, rng.uniform(5, 20))
    if kind == "babble":
        if not babble:
            raise ValueError("babble: expected other utterances to mix in")
        mix = sum(np.resize(babble[i], len(x)) for i in rng.choice(len(babble), size=min(3, len(babble)), replace=False))
        return add_noise(x, rng, rng.uniform(13, 20), mix)
    if kind == "speed":
        return speed(x, float(rng.choice([0.9, 1.1])))
    if kind == "reverb":
        return reverb(x, rng, rng.uniform(0.2, 0.8))
    raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
