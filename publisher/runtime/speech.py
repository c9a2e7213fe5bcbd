"""Is it speech, and how good? Word error rate through an offline recognizer and
DNSMOS predicted opinion scores (torch-free).

The recognizer is CMU PocketSphinx 5 (PyPI ``pocketsphinx``), whose wheel ships its US
English acoustic model, dictionary and language model, so nothing is downloaded; word
error rate comes from ``jiwer``; DNSMOS from PyPI ``speechmos`` (its wheel ships the ONNX
models). All are optional (the ``[quality]`` extra): without them ``missing_tools`` says
in one line what to install.

PocketSphinx is a weak recognizer next to modern ones; what matters here is that it is
the same for every variant, so a WER gap between two variants is the variants' doing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from publisher.runtime.errors import RunError
from publisher.runtime.synth import session_options

if TYPE_CHECKING:
    import numpy as np

RECOGNIZER_RATE = 16000  # PocketSphinx's en-us model is trained on 16 kHz audio
INSTALL_HINT = "install them with: python3 -m pip install -e '.[quality]'"
_WORD = re.compile(r"[a-z']+")


def _decoder():
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise RunError(
            f"the offline recognizer needs the pocketsphinx and jiwer packages; {INSTALL_HINT}"
        ) from None
    return Decoder(loglevel="FATAL")


def to_16k(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Resample to 16 kHz int16 PCM, peak-normalised (the recognizer's input)."""
    from math import gcd

    import numpy as np
    from scipy.signal import resample_poly

    g = gcd(RECOGNIZER_RATE, sample_rate)
    audio = resample_poly(
        np.asarray(wave, dtype=np.float64), RECOGNIZER_RATE // g, sample_rate // g
    )
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0:
        audio = audio / peak * 0.9
    return (audio * 32767).astype(np.int16)


def recognize(wave: np.ndarray, sample_rate: int) -> str:
    """The words PocketSphinx hears in ``wave`` (lowercase, space-separated)."""
    decoder = _decoder()
    pcm = to_16k(wave, sample_rate)
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return normalize(hyp.hypstr if hyp is not None else "")


def normalize(text: str) -> str:
    """Lowercase words only, so punctuation and case never count as errors."""
    return " ".join(_WORD.findall(text.lower().replace("’", "'")))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` after ``normalize`` (1.0 for nothing
    heard; can exceed 1 when the recognizer inserts words)."""
    try:
        import jiwer
    except ImportError:
        raise RunError(f"word error rate needs the jiwer package; {INSTALL_HINT}") from None
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        raise RunError("word error rate: the reference text has no words")
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))


def missing_tools() -> str | None:
    """None when the recognizer, jiwer and DNSMOS are importable, else one line saying
    what to install."""
    import importlib.util

    needed = ("pocketsphinx", "jiwer", "scipy", "speechmos", "librosa", "resemblyzer")
    absent = [name for name in needed if importlib.util.find_spec(name) is None]
    if absent:
        return f"speech gates need {', '.join(absent)}; {INSTALL_HINT}"
    return None


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate over a whole set: all errors over all reference words (jiwer)."""
    import jiwer

    refs = [normalize(r) for r in references]
    hyps = [normalize(h) or "<nothing>" for h in hypotheses]
    return float(jiwer.wer(refs, hyps))


def dnsmos(wave: np.ndarray, sample_rate: int) -> dict[str, float]:
    """DNSMOS P.835 (overall, signal, background; 1-5, higher is better) of ``wave`` from
    the models in PyPI ``speechmos`` (Microsoft's DNS challenge ONNX files, offline)."""
    from speechmos import dnsmos as model

    _dnsmos_sessions(model)
    audio = to_16k(wave, sample_rate).astype("float32") / 32768.0
    scores = model.run(audio, sr=RECOGNIZER_RATE)
    return {
        "overall": float(scores["ovrl_mos"]),
        "signal": float(scores["sig_mos"]),
        "background": float(scores["bak_mos"]),
    }


def _dnsmos_sessions(model) -> None:
    """speechmos makes its two sessions with onnxruntime's defaults (a spinning thread per
    core) the first time it scores; made here first, they take ``session_options()``'s
    threads, so a process working beside another keeps to its share (verify/beside.py).
    speechmos (pinned 0.0.1.1) keeps them in ``dnsmos.dnsmos``, found by model path."""
    import os

    import onnxruntime as ort

    if model.dnsmos is not None:
        return
    folder = os.path.join(os.path.dirname(os.path.abspath(model.__file__)), "dnsmos_models")
    scorer = model.DNSMOS.__new__(model.DNSMOS)
    scorer.primary_model_path = os.path.join(folder, "sig_bak_ovr.onnx")
    opts, cpu = session_options(), ["CPUExecutionProvider"]
    scorer.onnx_sess = ort.InferenceSession(scorer.primary_model_path, opts, providers=cpu)
    p808 = os.path.join(folder, "model_v8.onnx")
    scorer.p808_onnx_sess = ort.InferenceSession(p808, opts, providers=cpu)
    model.dnsmos = scorer
