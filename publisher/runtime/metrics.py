"""Audio comparison metrics: spectrogram correlation, log-mel distance, durations, SNR.

Written with numpy alone (a few lines each) rather than pulling librosa/scipy and their
dependency trees into every install for one STFT and one mel filterbank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

N_FFT = 1024
HOP = 256
N_MELS = 80
LOG_FLOOR = 1e-5


def magnitude_spectrogram(wave: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """|STFT| as (frames, n_fft // 2 + 1), Hann window, zero-padded to whole frames."""
    import numpy as np

    wave = np.asarray(wave, dtype=np.float64).reshape(-1)
    if wave.size < n_fft:
        wave = np.pad(wave, (0, n_fft - wave.size))
    frames = 1 + (wave.size - n_fft + hop - 1) // hop
    wave = np.pad(wave, (0, (frames - 1) * hop + n_fft - wave.size))
    windows = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop]  # views, no copy
    return np.abs(np.fft.rfft(windows * np.hanning(n_fft), axis=1))


def mel_filterbank(sr: int = 24000, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular filters evenly spaced on the HTK mel scale, (n_mels, n_fft // 2 + 1)."""
    import numpy as np

    def to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(0.0), to_mel(sr / 2), n_mels + 2))
    freqs = np.linspace(0.0, sr / 2, n_fft // 2 + 1)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (center - lower)
    falling = (upper - freqs) / (upper - center)
    return np.maximum(0.0, np.minimum(rising, falling))


def _common(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(ref.size, test.size)
    return ref[:n], test[:n]


def spectral_correlation(ref: np.ndarray, test: np.ndarray) -> float:
    """Pearson correlation of the two magnitude spectrograms over their common length."""

    return correlation(*common_spectra(ref, test))


def align_to_reference(
    ref_durations: np.ndarray,
    test_durations: np.ndarray,
    test: np.ndarray,
    frames: int,
    samples_per_frame: int,
    hop: int = HOP,
) -> np.ndarray:
    """The test's spectrogram columns resampled onto the reference's timeline.

    Both models predict one duration per token; token i spans the cumulative frames
    before it in each. The test column for reference time t is read (linear
    interpolation between columns) at the same relative position inside the same token, so
    a token one frame longer in the test shifts nothing after it. Equal durations give
    the test's columns unchanged. Returns ``frames`` columns (the reference's count)."""
    import numpy as np

    spec = magnitude_spectrogram(test, hop=hop)
    ref_bounds = np.concatenate([[0], np.cumsum(ref_durations)]) * samples_per_frame
    test_bounds = np.concatenate([[0], np.cumsum(test_durations)]) * samples_per_frame
    t_ref = np.arange(frames) * hop
    col = np.interp(t_ref, ref_bounds, test_bounds) / hop
    col = np.clip(col, 0, spec.shape[0] - 1)
    lo = np.floor(col).astype(int)
    hi = np.minimum(lo + 1, spec.shape[0] - 1)
    frac = (col - lo)[:, None]
    return spec[lo] * (1 - frac) + spec[hi] * frac


def aligned_spectra(
    ref: np.ndarray,
    test: np.ndarray,
    ref_durations: np.ndarray,
    test_durations: np.ndarray,
    samples_per_frame: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(reference spectrogram, test spectrogram on the reference's timeline); when the
    duration vectors cannot be paired (different token counts), the plain common length."""
    import numpy as np

    ref_d = np.asarray(ref_durations).reshape(-1)
    test_d = np.asarray(test_durations).reshape(-1)
    if ref_d.size == 0 or ref_d.size != test_d.size or np.array_equal(ref_d, test_d):
        return common_spectra(ref, test)
    spec = magnitude_spectrogram(ref)
    return spec, align_to_reference(ref_d, test_d, test, spec.shape[0], samples_per_frame)


def common_spectra(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude spectrograms of the two waveforms over their common length."""
    a, b = _common(ref, test)
    return magnitude_spectrogram(a), magnitude_spectrogram(b)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally shaped arrays (0 when either is constant)."""
    import numpy as np

    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def spectra_log_mel_distance(a: np.ndarray, b: np.ndarray, sr: int = 24000) -> float:
    """log_mel_distance of two magnitude spectrograms (same shape)."""
    import numpy as np

    bank = mel_filterbank(sr).T
    la, lb = (np.log(np.maximum(x @ bank, LOG_FLOOR)) for x in (a, b))
    return float(np.mean(np.sqrt(np.mean((la - lb) ** 2, axis=1))))


def log_mel(wave: np.ndarray, sr: int = 24000) -> np.ndarray:
    import numpy as np

    mel = magnitude_spectrogram(wave) @ mel_filterbank(sr).T
    return np.log(np.maximum(mel, LOG_FLOOR))


def log_mel_distance(ref: np.ndarray, test: np.ndarray, sr: int = 24000) -> float:
    """Mean over frames of the RMS difference of natural-log mel energies (0 = identical)."""

    return spectra_log_mel_distance(*common_spectra(ref, test), sr)


@dataclass
class DurationAgreement:
    equal_share: float  # share of tokens whose predicted duration is identical
    total_frames_diff: int  # test total minus reference total


def duration_agreement(ref: np.ndarray, test: np.ndarray) -> DurationAgreement:
    import numpy as np

    ref, test = np.asarray(ref).reshape(-1), np.asarray(test).reshape(-1)
    n = min(ref.size, test.size)
    equal = float(np.mean(ref[:n] == test[:n])) if n else 0.0
    if ref.size != test.size:
        equal *= n / max(ref.size, test.size)
    return DurationAgreement(equal, int(test.sum() - ref.sum()))


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-error ratio in dB over the common length (inf when identical)."""
    import numpy as np

    a, b = _common(np.asarray(ref, np.float64).ravel(), np.asarray(test, np.float64).ravel())
    noise = float(np.sum((a - b) ** 2))
    if noise == 0.0:
        return float("inf")
    return float(10.0 * np.log10(max(float(np.sum(a * a)), 1e-30) / noise))
