"""Published files load, unmodified, in the real runtimes people use."""

from __future__ import annotations

import numpy as np
import pytest

kokoro_onnx = pytest.importorskip("kokoro_onnx", reason="pip install -e '.[test]'")


@pytest.fixture(scope="module")
def built(tiny_dist, tiny, tmp_path_factory):
    from publisher.hub.repo_files import write_voices

    models = {
        "kokoro-v1.0": tiny_dist / "kokoro-v1.0" / "kokoro-v1.0.onnx",
        "quantized": tiny_dist / "quantized" / "onnx" / "model_quantized.onnx",
    }
    folder = tmp_path_factory.mktemp("voices")
    write_voices(tiny.voices, folder)
    return models, folder / "voices.npz"


@pytest.mark.parametrize("recipe", ["kokoro-v1.0", "quantized"])
def test_kokoro_onnx_speaks_with_our_file_unmodified(built, recipe):
    models, voices = built
    tts = kokoro_onnx.Kokoro(str(models[recipe]), str(voices))
    audio, sample_rate = tts.create("Hello world. This is a test.", voice="af_heart")
    assert sample_rate == 24000
    assert audio.ndim == 1 and audio.size > 24000 * 0.5
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-4


def test_kokoro_onnx_reads_the_vocab_from_our_metadata(built):
    models, voices = built
    tts = kokoro_onnx.Kokoro(str(models["kokoro-v1.0"]), str(voices))
    assert tts.sess.get_inputs()[0].name == "tokens"
    meta = tts.sess.get_modelmeta().custom_metadata_map
    assert "kokoro_config" in meta
