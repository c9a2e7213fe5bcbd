"""The deterministic switch used to prove an export sample by sample.

Kokoro's decoder has a neural-source-filter (NSF) excitation: a sine at the predicted F0
with random initial phases for the harmonics, plus Gaussian noise. Inside
``parity_mode(model)`` (both for torch inference and for ``torch.onnx.export``):

* random initial phases are zero and the Gaussian noise is a fixed, seeded pattern
  (tiled to any length), so the output is a pure function of the inputs;
* the harmonic sine is silenced. Measured reason: its phase is a float32 cumulative sum
  that reaches tens of thousands of radians, and torch's CPU cumsum accumulates in double
  while onnxruntime's accumulates in float, so for identical inputs the two sines differ by
  about 1e-2 (sin of a phase whose float32 rounding is 2e-3 rad). With zero noise instead
  of the fixed pattern, silent STFT bins have a phase of pure rounding noise, which the
  decoder's convolutions amplify. With both measures, parity is about 1e-6;
* the source spectrum's phase is pinned to +pi within ``BRANCH_CUT`` (relative) of the
  negative real axis, in torch (``torch.angle``) and in the exported ExactSTFT alike: on
  that axis the phase jumps by 2*pi, and float rounding that differs between torch's FFT
  and a Conv puts a bin on either side. Measured on synthetic:tiny: such flips cost
  2.4e-3 (10% of the peak) without pinning.

Nothing here changes the weights; the shipped graph is exported without this switch, and
its sine path is checked by the fidelity metrics instead.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kokoro.model import KModel

NOISE_PERIOD = 4801  # samples; prime, so the tiled pattern has no short period
NOISE_SEED = 1234
BRANCH_CUT = 1e-4  # |imag| <= BRANCH_CUT * |real| with real < 0 -> phase +pi


class _FixedNoiseTorch(types.ModuleType):
    """Stands in for ``torch`` inside kokoro.istftnet: rand -> zeros, randn_like -> pattern."""

    def __init__(self, real: Any) -> None:
        super().__init__("torch")
        self._real = real
        gen = real.Generator().manual_seed(NOISE_SEED)
        self._pattern = real.randn(NOISE_PERIOD, 16, generator=gen)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def rand(self, *args: Any, **kwargs: Any) -> Any:
        return self._real.zeros(*args, **kwargs)

    def randn_like(self, t: Any, **kwargs: Any) -> Any:
        length, channels = t.shape[1], t.shape[2]
        reps = length // NOISE_PERIOD + 1
        tiled = self._pattern[:, :channels].repeat(reps, 1)[:length]
        return tiled.unsqueeze(0).expand_as(t).to(t.dtype)

    def angle(self, z: Any) -> Any:
        # lazy: export.stft imports torch at its top; this module is read without it
        from publisher.export.stft import pinned_angle

        return pinned_angle(z.real, z.imag, BRANCH_CUT)


@contextlib.contextmanager
def parity_mode(model: KModel, *, voiced: bool = False) -> Iterator[None]:
    """Make ``model``'s decoder deterministic and well-conditioned (see module doc).

    ``voiced=True`` keeps the harmonic sine (initial phases zero): the deterministic mode
    for fidelity, which hears the voiced speech a listener hears (with the sine silenced,
    real weights make a whisper of the fixed noise). Its torch/onnxruntime rounding
    (about 1e-2, see above) is far below what fidelity gates measure, not parity's 1e-4."""
    import kokoro.istftnet as istftnet

    sine_gen = model.decoder.generator.m_source.l_sin_gen
    real_torch = istftnet.torch
    istftnet.torch = _FixedNoiseTorch(real_torch)
    if not voiced:
        sine_gen._f02sine = lambda f0_values: real_torch.zeros_like(f0_values)
    analysis = getattr(model.decoder.generator.stft, "analysis", None)  # ExactSTFT
    if analysis is not None:
        analysis.branch_cut = BRANCH_CUT
    try:
        yield
    finally:
        istftnet.torch = real_torch
        if not voiced:
            del sine_gen._f02sine
        if analysis is not None:
            analysis.branch_cut = 0.0
