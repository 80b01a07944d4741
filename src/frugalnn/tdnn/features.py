"""80-dim log-mel filterbank features: 25 ms Hamming windows every 10 ms at 16 kHz, mean-normalized per
utterance (the paper's front end). torch.stft for the spectrum, librosa's (Slaney) mel filterbank.

torchaudio's Kaldi-compatible fbank would be the obvious choice, but no torchaudio build matches torch 2.13.
Frames are centred, so 3 s (48,000 samples) gives 1 + 48000 // 160 = 301 frames: the paper's MAC input.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

SAMPLE_RATE = 16000
WIN = 400      # 25 ms
HOP = 160      # 10 ms
N_FFT = 512
N_MELS = 80


@lru_cache(maxsize=4)
def _mel_basis(n_mels: int, sr: int) -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=n_mels, fmin=20.0, fmax=sr / 2 - 400,
                                                norm="slaney", htk=False)).float()


@lru_cache(maxsize=2)
def _window() -> torch.Tensor:
    return torch.hamming_window(WIN, periodic=False)


def frames(n_samples: int) -> int:
    return 1 + n_samples // HOP


def fbank(wave, n_mels: int = N_MELS, sr: int = SAMPLE_RATE, mean_norm: bool = True) -> torch.Tensor:
    """wave: (samples,) or (batch, samples) float at `sr` -> (n_mels, frames) or (batch, n_mels, frames)."""
    x = torch.as_tensor(np.asarray(wave, dtype=np.float32) if not isinstance(wave, torch.Tensor) else wave).float()
    if x.dim() not in (1, 2):
        raise ValueError(f"wave: expected (samples,) or (batch, samples), got shape {tuple(x.shape)}")
    if x.shape[-1] < WIN:
        raise ValueError(f"wave: expected at least {WIN} samples (one 25 ms window), got {x.shape[-1]}")
    if sr != SAMPLE_RATE:
        raise ValueError(f"sr: the features are defined at {SAMPLE_RATE} Hz, got {sr} (resample first)")
    squeeze = x.dim() == 1
    x = x.reshape(-1, x.shape[-1])
    x = torch.cat([x[:, :1], x[:, 1:] - 0.97 * x[:, :-1]], dim=1)  # pre-emphasis (Kaldi's default)
    spec = torch.stft(x, N_FFT, HOP, WIN, _window(), center=True, pad_mode="reflect", return_complex=True)
    power = spec.real.square() + spec.imag.square()
    feats = torch.log(torch.matmul(_mel_basis(n_mels, sr), power) + 1e-6)
    if mean_norm:
        feats = feats - feats.mean(dim=-1, keepdim=True)
    return feats[0] if squeeze else feats


class Fbank(torch.nn.Module):
    """fbank() as a module (waveforms in, features out), for a model that takes raw audio."""

    def __init__(self, n_mels: int = N_MELS, mean_norm: bool = True):
        super().__init__()
        self.n_mels, self.mean_norm = n_mels, mean_norm

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return fbank(wave, self.n_mels, mean_norm=self.mean_norm)
