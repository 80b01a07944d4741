"""Fbank: librosa's mel power spectrum, logged and mean-normalized; 301 frames for 3 s."""
import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from frugalnn.tdnn.features import Fbank, fbank


def test_matches_librosa_log_mel():
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(16000 + 37)).astype(np.float32)
    pre = np.concatenate([y[:1], y[1:] - 0.97 * y[:-1]])
    win = scipy.signal.get_window("hamming", 400, fftbins=False)
    mel = librosa.feature.melspectrogram(y=pre, sr=16000, n_fft=512, hop_length=160, win_length=400, window=win,
                                         center=True, pad_mode="reflect", power=2.0, n_mels=80, fmin=20.0,
                                         fmax=7600.0)
    want = np.log(mel + 1e-6)
    want -= want.mean(axis=1, keepdims=True)
    got = fbank(y).numpy()
    assert got.shape == (80, 1 + len(y) // 160)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_shapes_batch_and_errors():
    assert fbank(np.zeros(48000, np.float32) + 0.01).shape == (80, 301)
    x = torch.randn(3, 8000)
    torch.testing.assert_close(Fbank()(x)[1], fbank(x[1]))
    assert float(fbank(torch.randn(4000)).mean(dim=1).abs().max()) < 1e-4
    with pytest.raises(ValueError, match="wave"):
        fbank(np.zeros(100))
    with pytest.raises(ValueError, match="sr"):
        fbank(np.zeros(8000), sr=8000)
