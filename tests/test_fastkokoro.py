"""A bucket graph runs unmodified in PyPI fastkokoro 0.7.0: engine and HTTP server.

Uses a tiny bucket build (recipe b48 on synthetic:tiny, exported, passed through the
recipe's passes and the metadata pass exactly as `publisher build` writes it) and
voices.npz from ``publisher.hub.repo_files.write_voices``; offline settings from
shared/reference/client-contracts.md. Skipped when fastkokoro is not installed
(``pip install fastkokoro==0.7.0``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip(
    "fastkokoro", reason="fastkokoro is not installed (pip install fastkokoro==0.7.0)"
)

from publisher.export.bucket.shape import tail_margin_samples  # noqa: E402
from publisher.runtime.constants import SAMPLES_PER_FRAME

RECIPE = "b48"  # width >= 48: fastkokoro's 220 ms tail trim + 96 ms fade
TEXT = "Hello world. The quick brown fox jumps over the lazy dog, twice."


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory) -> dict[str, Path]:
    from publisher.build import onnx_metadata
    from publisher.export.fp32 import export_fp32
    from publisher.hub.repo_files import write_voices
    from publisher.passes import PassContext, run_passes
    from publisher.recipe.loader import load_recipe

    recipe = load_recipe(RECIPE)
    folder = tmp_path_factory.mktemp("fastkokoro")
    graph = export_fp32(tiny, recipe)
    ctx = PassContext(config=tiny.config, metadata=onnx_metadata(recipe, tiny), voices=tiny.voices)
    model_path = folder / Path(recipe.output.path).name
    onnx.save(run_passes(onnx.load(str(graph)), recipe, ctx), str(model_path))
    write_voices(tiny.voices, folder)
    return {"model": model_path, "voices": folder / "voices.npz", "folder": folder}


def _env(files: dict[str, Path], **extra: str) -> dict[str, str]:
    return {
        "FASTKOKORO_MODEL_PATH": str(files["model"]),
        "FASTKOKORO_VOICES_PATH": str(files["voices"]),
        "FASTKOKORO_CACHE_DIR": str(files["folder"] / "cache"),
        "FASTKOKORO_DEFAULT_VOICE": "af_heart",
        "FASTKOKORO_WARMUP": "0",
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


@pytest.fixture(scope="module")
def engine(files):
    from fastkokoro.config import Settings
    from fastkokoro.engine import FastKokoro

    saved = dict(os.environ)
    os.environ.update(_env(files))
    try:
        yield FastKokoro(Settings.from_env())
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_fastkokoro_reads_the_bucket_metadata_and_the_duration_output(engine, files):
    profile = engine._onnx_profile
    meta = {p.key: p.value for p in onnx.load(str(files["model"])).metadata_props}
    frames = int(meta["fastkokoro.fixed_alignment_frames"])
    samples = int(meta["fastkokoro.fixed_output_samples"])
    assert profile.token_input_static and profile.token_input_width == 48
    assert "input_lengths" in profile.input_names
    assert profile.duration_output_name == "duration"  # only read when all 4 keys exist
    margin = tail_margin_samples(48)
    assert profile.safe_duration_frames == min(frames, (samples - margin) // SAMPLES_PER_FRAME)
    # the output carries the tail margin after 600 * F, so fastkokoro plans all F frames
    assert profile.safe_duration_frames == frames


def test_fastkokoro_engine_synthesizes_text_with_the_bucket_graph(engine):
    from fastkokoro.engine import SAMPLE_RATE

    samples, rate = engine._create_samples(
        TEXT, voice=engine._voice_styles["af_heart"], speed=1.0, lang=engine.settings.default_lang
    )
    assert rate == SAMPLE_RATE == 24000
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.size > rate // 2 and np.isfinite(samples).all() and np.abs(samples).max() > 0
    wav = engine.create("Hello there.", voice="af_heart", response_format="wav")
    assert wav[:4] == b"RIFF"


def test_fastkokoro_tail_cut_removes_only_the_zeros_after_our_content(engine):
    from publisher.runtime.synth import open_session, run_bucket_once

    phonemes = engine._phonemize_cached("Hello there, world.", engine.settings.default_lang)
    ids = engine.kokoro.tokenizer.tokenize(phonemes)
    voice = engine._voice_styles["af_heart"]
    _, dur = run_bucket_once(open_session(engine.model_path), ids, voice[len(ids) - 1], 1.0)
    content = SAMPLES_PER_FRAME * int(dur.sum())
    assert int(dur.sum()) <= engine._onnx_profile.safe_duration_frames
    out = engine._run_onnx_audio(phonemes, voice, 1.0)  # graph + fastkokoro's tail cut
    assert out.size >= content  # the whole content survives the 220 ms trim and fade
    assert np.all(out[content:] == 0.0)
    assert np.abs(out[content - SAMPLES_PER_FRAME : content]).max() > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fastkokoro_http_server_serves_speech_from_the_bucket_graph(files, tmp_path):
    port = _free_port()
    env = {**os.environ, **_env(files, FASTKOKORO_HOST="127.0.0.1", FASTKOKORO_PORT=str(port))}
    # the server is stopped with SIGTERM, so phonemizer's copies of libespeak-ng (a
    # temporary folder each, removed only at a clean exit) would be left in /tmp
    (tmp_path / "server-tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "server-tmp")
    code = "from fastkokoro.cli import main; main()"  # the `fastkokoro` console script
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
                pytest.fail(f"fastkokoro server did not come up on {base}: {log[-2000:]}")
            time.sleep(0.5)
        body = {"model": "kokoro", "input": TEXT, "voice": "af_heart", "response_format": "wav"}
        request = urllib.request.Request(
            f"{base}/v1/audio/speech",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as r:
            assert r.status == 200
            audio = r.read()
        assert audio[:4] == b"RIFF" and len(audio) > 24000  # > 0.5 s of 16-bit audio
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
