"""Runs inside an isolated runtime environment (stdlib, numpy and the runtime only; nothing
of publisher): ``python probe.py REQUEST.json`` prints one JSON line, ``{"ok": true, ...}``
with what came out, or ``{"ok": false, "error": the runtime's own first error line}``.

Kinds: ``onnxruntime`` (InferenceSession + one run with the feeds publisher prepared),
``kokoro-onnx`` (``Kokoro(model, voices).create``), ``fastkokoro`` (its engine from the
environment variables its server reads), ``sherpa-onnx`` (``OfflineTts`` on a bundle). The
text kinds speak ``text`` once, then, when the request has ``heard``, each of its lines
(text, voice, and for sherpa-onnx the speaker id and lexicon), saving ``k.npy`` and the
sample rates beside them for publisher to hear.
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
    opts.intra_op_num_threads = int(req.get("threads") or 0)  # publisher's PUBLISHER_THREADS
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

    kokoro = Kokoro(req["model"], req["voices"])

    def speak(text, voice, line):
        return kokoro.create(text, voice=voice, lang=line.get("lang", "en-us"))

    return speak


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

    def speak(text, voice, line):
        lang = line.get("lang", engine.settings.default_lang)
        styles = engine._voice_styles[voice]
        return engine._create_samples(text, voice=styles, speed=1.0, lang=lang)

    return speak


def _sherpa_onnx(req):
    import sherpa_onnx

    folder = req["bundle"]
    engines = {}

    def engine(lexicon):
        if lexicon not in engines:
            kokoro = sherpa_onnx.OfflineTtsKokoroModelConfig(
                model=os.path.join(folder, "model.onnx"),
                voices=os.path.join(folder, "voices.bin"),
                tokens=os.path.join(folder, "tokens.txt"),
                data_dir=os.path.join(folder, "espeak-ng-data"),
                # one accent's lexicon: given both, sherpa-onnx merges them and every
                # voice gets a mix of US and UK pronunciations
                lexicon=os.path.join(folder, lexicon),
            )
            model = sherpa_onnx.OfflineTtsModelConfig(kokoro=kokoro, num_threads=1)
            engines[lexicon] = sherpa_onnx.OfflineTts(sherpa_onnx.OfflineTtsConfig(model=model))
        return engines[lexicon]

    def speak(text, voice, line):
        tts = engine(line.get("lexicon", "lexicon-us-en.txt"))
        audio = tts.generate(text, sid=int(line.get("sid", 0)), speed=1.0)
        return audio.samples, audio.sample_rate

    return speak


def _spoken(speak, req):
    """The request's one call, then (``heard``) each line saved as k.npy, rates.json."""
    audio, rate = speak(req["text"], req.get("voice"), req)
    out = _samples(audio) | {"sample_rate": int(rate)}
    heard = req.get("heard")
    if heard:
        import numpy as np

        rates = []
        for k, line in enumerate(heard["lines"]):
            audio, rate = speak(line["text"], line["voice"], line)
            np.save(os.path.join(heard["dir"], f"{k}.npy"), np.asarray(audio, dtype=np.float32))
            rates.append(int(rate))
        with open(os.path.join(heard["dir"], "rates.json"), "w", encoding="utf-8") as fh:
            json.dump(rates, fh)
        out["heard_lines"] = len(rates)
    return out


TEXT_KINDS = {  # each gives speak(text, voice, line) -> (samples, sample rate)
    "kokoro-onnx": _kokoro_onnx,
    "fastkokoro": _fastkokoro,
    "sherpa-onnx": _sherpa_onnx,
}


def main():
    with open(sys.argv[1], encoding="utf-8") as fh:
        req = json.load(fh)
    _SAVE["path"] = req.get("save")
    try:
        if req["kind"] == "onnxruntime":
            out = {"ok": True, **_onnxruntime(req)}
        else:
            out = {"ok": True, **_spoken(TEXT_KINDS[req["kind"]](req), req)}
    except BaseException as exc:  # the runtime's own error, reported, never a traceback
        out = {"ok": False, "error": _first_line(exc)}
    print("PROBE " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
