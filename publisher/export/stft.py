"""An exact, export-friendly STFT/iSTFT for Kokoro's generator.

Upstream Kokoro (``KModel(disable_complex=False)``) runs ``torch.stft``/``torch.istft``
(centred, reflect padding, periodic Hann window, one-sided). Neither exports with standard
ONNX ops, and kokoro's own export helper (``CustomSTFT``, ``disable_complex=True``) is an
approximation: replicate instead of reflect padding, one-sided bins not doubled, overlap-add
not normalised by the window envelope. ``ExactSTFT`` computes the same transforms as
``torch.stft``/``torch.istft`` with Pad, Conv, ConvTranspose and elementwise ops:

* analysis: reflect padding of ``n_fft // 2`` and one strided Conv1d whose rows are the
  windowed DFT basis (cos rows, then -sin rows; the -sin rows of DC and Nyquist, exactly 0
  in an FFT, are zeroed so those bins' imaginary parts are exactly 0 here too), then
  magnitude and ``atan2`` phase with torch's value pi on the negative real axis;
* synthesis: one ConvTranspose1d whose rows are the inverse real DFT basis times the window
  (bins 1..n/2-1 doubled, DC and Nyquist imaginary parts ignored, 1/n_fft), divided by the
  overlap-added squared window of the frames present (``keep``), trimmed by ``n_fft // 2``
  at both ends, as ``torch.istft(center=True)``.

Measured (tests/test_exact_stft.py): both directions agree with torch to float rounding.
``exact_stft(model)`` swaps the module in for the length of an export; the model outside
stays upstream's. The phase has a 2*pi jump on the negative real axis, so bins whose
imaginary part is rounding noise can land on either side in two implementations; parity
mode (publisher/export/parity.py) pins a thin band around the axis to +pi on both sides via
``branch_cut``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from publisher.runtime.errors import ExportError

if TYPE_CHECKING:
    from kokoro.model import KModel

ENVELOPE_FLOOR = 1e-11  # torch.istft refuses envelopes below this; here: 0 out, not NaN


def hann_window(win_length: int, n_fft: int) -> np.ndarray:
    """torch.hann_window(win_length, periodic=True), centred in n_fft as torch.stft does."""
    n = np.arange(win_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / win_length)
    left = (n_fft - win_length) // 2
    return np.pad(window, (left, n_fft - win_length - left))


def analysis_basis(n_fft: int, window: np.ndarray) -> np.ndarray:
    """[2 * bins, 1, n_fft]: window * cos rows, then window * -sin rows (DC/Nyquist sin 0)."""
    bins = n_fft // 2 + 1
    angle = 2 * np.pi * np.outer(np.arange(bins), np.arange(n_fft)) / n_fft
    sin = np.sin(angle)
    sin[0] = 0.0
    if n_fft % 2 == 0:
        sin[-1] = 0.0
    basis = np.concatenate([np.cos(angle), -sin]) * window
    return basis[:, None, :].astype(np.float32)


def synthesis_basis(n_fft: int, window: np.ndarray) -> np.ndarray:
    """[2 * bins, 1, n_fft]: irfft rows (real parts, then imaginary parts) times the window."""
    bins = n_fft // 2 + 1
    angle = 2 * np.pi * np.outer(np.arange(bins), np.arange(n_fft)) / n_fft
    weight = np.full(bins, 2.0)
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0
    real = np.cos(angle) * weight[:, None]
    imag = -np.sin(angle) * weight[:, None]
    imag[0] = 0.0  # irfft ignores the imaginary part of DC ...
    if n_fft % 2 == 0:
        imag[-1] = 0.0  # ... and of Nyquist
    basis = np.concatenate([real, imag]) * window / n_fft
    return basis[:, None, :].astype(np.float32)


class Analysis(nn.Module):
    """torch.stft(center=True, pad_mode='reflect', onesided) -> magnitude, phase."""

    def __init__(self, n_fft: int, hop: int, window: np.ndarray) -> None:
        super().__init__()
        self.n_fft, self.hop, self.bins = n_fft, hop, n_fft // 2 + 1
        self.register_buffer("basis", torch.from_numpy(analysis_basis(n_fft, window)))
        self.branch_cut = 0.0  # relative band around the negative real axis -> +pi

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad = self.n_fft // 2
        x = F.pad(waveform.unsqueeze(1), (pad, pad), mode="reflect")
        spec = F.conv1d(x, self.basis, stride=self.hop)
        real, imag = spec[:, : self.bins], spec[:, self.bins :]
        magnitude = torch.sqrt(real * real + imag * imag)
        return magnitude, pinned_angle(real, imag, self.branch_cut)


class Synthesis(nn.Module):
    """torch.istft(center=True) of magnitude * exp(i * phase), frames in ``keep`` only."""

    def __init__(self, n_fft: int, hop: int, window: np.ndarray) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("basis", torch.from_numpy(synthesis_basis(n_fft, window)))
        square = (window * window).astype(np.float32).reshape(1, 1, -1)
        self.register_buffer("window_square", torch.from_numpy(square))

    def forward(
        self, magnitude: torch.Tensor, phase: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        spec = torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=1)
        frames = torch.ones_like(magnitude[:1, :1]) if keep is None else keep[:1, :1]
        signal = F.conv_transpose1d(spec, self.basis, stride=self.hop)
        envelope = F.conv_transpose1d(frames, self.window_square, stride=self.hop)
        envelope = torch.where(envelope > ENVELOPE_FLOOR, envelope, torch.ones_like(envelope))
        pad = self.n_fft // 2
        out = signal / envelope
        return out[..., pad : out.shape[-1] - pad]


class ExactSTFT(nn.Module):
    """Drop-in for kokoro's TorchSTFT/CustomSTFT: ``transform`` and ``inverse``."""

    def __init__(self, n_fft: int, hop: int, win_length: int) -> None:
        super().__init__()
        if win_length > n_fft:
            raise ExportError(f"ExactSTFT: win_length {win_length} > n_fft {n_fft}")
        window = hann_window(win_length, n_fft)
        self.filter_length, self.hop_length, self.win_length = n_fft, hop, win_length
        self.analysis = Analysis(n_fft, hop, window)
        self.synthesis = Synthesis(n_fft, hop, window)

    def transform(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.analysis(waveform)

    def inverse(
        self, magnitude: torch.Tensor, phase: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.synthesis(magnitude, phase, keep)


def pinned_angle(real: Any, imag: Any, branch_cut: float) -> Any:
    """torch.angle(real + i imag) in exportable ops; exact zero -> 0 (ONNX's Div would give
    NaN); imaginary parts within ``branch_cut * |real|`` of the negative real axis -> +pi
    (torch's value at imag == +0, which ONNX's atan2 decomposition turns into -pi)."""
    both_zero = (real == 0) & (imag == 0)
    phase = torch.atan2(imag, real)
    phase = torch.where(both_zero, torch.zeros_like(phase), phase)
    on_cut = (imag.abs() <= branch_cut * real.abs()) & (real < 0)
    return torch.where(on_cut, torch.full_like(phase, math.pi), phase)


def exact_for(stft: Any) -> Any:
    """An ExactSTFT with the settings of kokoro's TorchSTFT or CustomSTFT ``stft``."""
    n_fft = getattr(stft, "filter_length", None)
    hop = getattr(stft, "hop_length", None)
    win = getattr(stft, "win_length", None)
    if not (n_fft and hop and win):
        raise ExportError(f"cannot read STFT settings from {type(stft).__name__}")
    return ExactSTFT(int(n_fft), int(hop), int(win))


@contextlib.contextmanager
def exact_stft(model: KModel) -> Iterator[None]:
    """Within the block, ``model``'s generator runs ExactSTFT (restored afterwards)."""
    gen = model.decoder.generator
    original = gen.stft
    gen.stft = exact_for(original)
    try:
        yield
    finally:
        gen.stft = original
