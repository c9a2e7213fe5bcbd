"""Runs inside an isolated runtime environment (stdlib, numpy and the runtime only; nothing
of publisher): ``python probe.py REQUEST.json`` prints one JSON line, ``{"ok": true, ...}``
with what came out, or ``{"ok": false, "error": the runtime's own first error line}``.

Kinds: ``onnxruntime`` (InferenceSession + one run with the feeds publisher prepared),
``kokoro-onnx`` (``Kokoro(model, voices).create``), ``fastkokoro`` (its engine from the
environment variables its server reads), ``sherpa-onnx`` (``OfflineTts`` on a bundle).
"""

import json
import os
import sys


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:2000]


_SAVE = {}  # "path": where to keep the waveform (.npy), when the request names one


def _samples(audio):
    import numpy as np

    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        raise ValueError("no samples came out")
    if not np.isfinite(audio).all():
        raise ValueError("the output has NaN or infinite samples")
    if _SAVE.get("path"):
        np.save(_SAVE["path"], audio)
    return {"samples": int(audio.size), "peak": float(np.abs(audio).max())}


def _onnxruntime(req):
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(req["model"], opts, providers=["CPUExecutionProvider"])
    with np.load(req["feeds"]) as data:
        feeds = {k: data[k] for k in data.files}
    outputs = sess.run(None, feeds)
    if _SAVE.get("path") and len(outputs) > 1:  # the durations, to align the waveforms
        with open(_SAVE["path"] + ".dur.json", "w", encoding="utf-8") as fh:
            json.dump([int(d) for d in np.asarray(outputs[1]).reshape(-1)], fh)
    return _samples(outputs[0]) | {"version": ort.__version__}


def _kokoro_onnx(req):
    from kokoro_onnx import Kokoro

    audio, rate = Kokoro(req["model"], req["voices"]).create(req["text"], voice=req["voice"])
    return _samples(audio) | {"sample_rate": int(rate)}


def _fastkokoro(req):
    os.environ.update(
        {
            "FASTKOKORO_MODEL_PATH": req["model"],
            "FASTKOKORO_VOICES_PATH": req["voices"],
            "FASTKOKORO_CACHE_DIR": req["scratch"],
            "FASTKOKORO_DEFAULT_VOICE": req["voice"],
            "FASTKOKORO_WARMUP": "0",
            "HF_HUB_OFFLINE": "1",
        }
    )
    from fastkokoro.config import Settings
    from fastkokoro.engine import FastKokoro

    engine = FastKokoro(Settings.from_env())
    samples, rate = engine._create_samples(
        req["text"],
        voice=engine._voice_styles[req["voice"]],
        speed=1.0,
        lang=engine.settings.default_lang,
    )
    return _samples(samples) | {"sample_rate": int(rate)}


def _sherpa_onnx(req):
    import sherpa_onnx

    folder = req["bundle"]
    config = sherpa_onnx.OfflineTtsConfig(
        model=sherpa_onnx.OfflineTtsModelConfig(
            kokoro=sherpa_onnx.OfflineTtsKokoroModelConfig(
                model=os.path.join(folder, "model.onnx"),
                voices=os.path.join(folder, "voices.bin"),
                tokens=os.path.join(folder, "tokens.txt"),
                data_dir=os.path.join(folder, "espeak-ng-data"),
                # one accent's lexicon: given both, sherpa-onnx merges them and every
                # voice gets a mix of US and UK pronunciations
                lexicon=os.path.join(folder, req.get("lexicon", "lexicon-us-en.txt")),
            ),
            num_threads=1,
        ),
    )
    tts = sherpa_onnx.OfflineTts(config)
    audio = tts.generate(req["text"], sid=int(req.get("sid", 0)), speed=1.0)
    return _samples(audio.samples) | {"sample_rate": int(audio.sample_rate)}


KINDS = {
    "onnxruntime": _onnxruntime,
    "kokoro-onnx": _kokoro_onnx,
    "fastkokoro": _fastkokoro,
    "sherpa-onnx": _sherpa_onnx,
}


def main():
    with open(sys.argv[1], encoding="utf-8") as fh:
        req = json.load(fh)
    _SAVE["path"] = req.get("save")
    try:
        out = {"ok": True, **KINDS[req["kind"]](req)}
    except BaseException as exc:  # the runtime's own error, reported, never a traceback
        out = {"ok": False, "error": _first_line(exc)}
    print("PROBE " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
