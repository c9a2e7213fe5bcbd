"""ExactSTFT against torch.stft/torch.istft (Kokoro's settings: n_fft 20, hop 5, Hann)."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch

from publisher.export.stft import ExactSTFT, exact_for, exact_stft, pinned_angle

N_FFT, HOP = 20, 5
WINDOW = torch.hann_window(N_FFT, periodic=True)


@pytest.fixture(scope="module")
def stft():
    return ExactSTFT(N_FFT, HOP, N_FFT).eval()


def _spectrum(frames: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    magnitude = torch.exp(torch.randn(1, N_FFT // 2 + 1, frames, generator=gen))
    phase = torch.sin(3 * torch.randn(1, N_FFT // 2 + 1, frames, generator=gen))
    return magnitude, phase


def _phase_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a - b).abs() % (2 * math.pi)
    return torch.minimum(d, 2 * math.pi - d)


@pytest.mark.parametrize("samples", [600, 6001])
def test_transform_matches_torch_stft(stft, samples):
    x = torch.randn(1, samples, generator=torch.Generator().manual_seed(samples))
    magnitude, phase = stft.transform(x)
    ref = torch.stft(x, N_FFT, HOP, N_FFT, window=WINDOW, return_complex=True)
    assert magnitude.shape == ref.shape
    assert (magnitude - ref.abs()).abs().max() < 1e-5
    loud = ref.abs() > 1e-2  # the phase of a near-empty bin is rounding noise
    assert _phase_error(phase, ref.angle())[loud].max() < 1e-4


def test_inverse_matches_torch_istft_where_kokoros_custom_stft_does_not(stft):
    from kokoro.custom_stft import CustomSTFT

    magnitude, phase = _spectrum(1201, seed=1)
    ref = torch.istft(magnitude * torch.exp(phase * 1j), N_FFT, HOP, N_FFT, window=WINDOW)
    ours = stft.inverse(magnitude, phase)[:, 0]
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() < 1e-5 * ref.abs().max()
    custom = CustomSTFT(N_FFT, HOP, N_FFT).inverse(magnitude, phase)[:, 0]
    assert (custom - ref).abs().max() > 0.1 * ref.abs().max()  # the approximation we replace


def test_inverse_of_the_kept_frames_equals_istft_of_those_frames_alone(stft):
    magnitude, phase = _spectrum(300, seed=2)
    valid = 201
    keep = (torch.arange(300) < valid).float().reshape(1, 1, -1)
    ours = stft.inverse(magnitude * keep, phase, keep)[:, 0]
    alone = torch.istft(
        (magnitude * torch.exp(phase * 1j))[..., :valid], N_FFT, HOP, N_FFT, window=WINDOW
    )
    n = alone.shape[-1]
    assert (ours[:, :n] - alone).abs().max() < 1e-5 * alone.abs().max()
    assert torch.isfinite(ours).all()


def test_angle_is_torchs_on_the_negative_real_axis_and_zero_at_the_origin():
    real = torch.tensor([-2.0, -2.0, 0.0, 3.0, -1.0])
    imag = torch.tensor([0.0, -1e-6, 0.0, 0.0, -0.5])
    exact = pinned_angle(real, imag, 0.0)
    assert exact[0] == pytest.approx(math.pi) and exact[2] == 0.0
    assert exact[1] == pytest.approx(-math.pi, abs=1e-5)  # no band: torch's value
    banded = pinned_angle(real, imag, 1e-4)
    assert banded[1] == pytest.approx(math.pi)
    assert banded[4] == pytest.approx(math.atan2(-0.5, -1.0))


class _RoundTrip(torch.nn.Module):
    def __init__(self, stft) -> None:
        super().__init__()
        self.stft = stft

    def forward(self, x):
        magnitude, phase = self.stft.transform(x)
        return magnitude, phase, self.stft.inverse(magnitude, phase)


def test_exported_graph_matches_torch_stft_and_istft_at_any_length(stft, tmp_path):
    path = tmp_path / "stft.onnx"
    x = torch.randn(1, 1200)
    torch.onnx.export(
        _RoundTrip(stft),
        (x,),
        str(path),
        input_names=["x"],
        output_names=["magnitude", "phase", "y"],
        dynamic_axes={"x": {1: "n"}, "magnitude": {2: "f"}, "phase": {2: "f"}, "y": {2: "m"}},
        opset_version=17,
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in __import__("onnx").load(str(path)).graph.node}
    assert not ops & {"STFT", "DFT", "ScatterND"}
    for samples in (900, 4805):
        wave = torch.randn(1, samples, generator=torch.Generator().manual_seed(samples))
        magnitude, phase, y = session.run(None, {"x": wave.numpy()})
        ref = torch.stft(wave, N_FFT, HOP, N_FFT, window=WINDOW, return_complex=True)
        assert np.abs(magnitude - ref.abs().numpy()).max() < 1e-5
        loud = ref.abs() > 1e-2
        assert _phase_error(torch.from_numpy(phase), ref.angle())[loud].max() < 1e-4
        back = torch.istft(ref, N_FFT, HOP, N_FFT, window=WINDOW).numpy()
        assert np.abs(y[:, 0] - back).max() < 1e-4  # and both reconstruct the input
        assert np.abs(back - wave.numpy()[:, : back.shape[-1]]).max() < 1e-4


def test_exact_stft_swaps_the_generators_stft_for_the_block_only(tiny_model):
    original = tiny_model.decoder.generator.stft
    with exact_stft(tiny_model):
        inside = tiny_model.decoder.generator.stft
        assert hasattr(inside, "analysis") and inside is not original
        assert inside.filter_length == original.filter_length
    assert tiny_model.decoder.generator.stft is original
    assert type(exact_for(original)).__name__ == "ExactSTFT"
