"""Published files load, unmodified, in the real runtimes people use."""

from __future__ import annotations

import numpy as np
import pytest

from publisher.build import build
from publisher.recipe import load_recipe

kokoro_onnx = pytest.importorskip("kokoro_onnx", reason="pip install -e '.[test]'")


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("dist")
    models = {
        name: build(load_recipe(name), checkpoint="synthetic:tiny", out_dir=out).model_path
        for name in ("kokoro-v1.0", "quantized")
    }
    voices = out / "voices.npz"
    np.savez(voices, **tiny.voices)
    return models, voices


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
