"""In-browser mode: the listener's browser runs the variants with onnxruntime-web.

The server prepares the same inputs its own synthesis uses (phoneme ids per call, the
style row, the speed) and where each file is (the model repo's URL, or the Space's file
route for a local folder); the page downloads each file, builds a session on WebGPU when
the browser offers one and on WASM otherwise, runs the calls, plays the audio and sends
back the waveform, the durations and its timings. The server then holds each browser
output to its own onnxruntime run of the same variant on the same inputs, as the runtime
matrix does: the token-aligned spectral correlation over the correlation of two server
runs (the voice source is random, so two runs of one file differ a little). Below
``SAME_AUDIO_MATCH`` the variant is flagged as not sounding like it does on the server.

onnxruntime-web is served by the Space itself (``static/ort``, bundled by ``publisher
space`` from the pinned npm release), so nothing is loaded from a CDN.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kokoro_space.engine import Engine, InputError, Run, Variant, fidelity
from kokoro_space.source import APP_DIR, HubSource, LocalSource
from publisher.runtime.clients import ORT_WEB_WASM, ORT_WEB_WEBGPU, kokoro_js_dtype
from publisher.runtime.constants import MAX_PHONEMES, SAME_AUDIO_MATCH, SAMPLE_RATE

if TYPE_CHECKING:
    import numpy as np

ORT_DIR_ENV = "KOKORO_ORT_DIR"
MAX_RESULT_CHARS = 64 * 2**20  # the browser's answer (base64 waveforms), at most
MAX_AUDIO_S = 600.0


def ort_dir() -> Path:
    """Where the Space serves onnxruntime-web from: $KOKORO_ORT_DIR, else static/ort."""
    env = os.environ.get(ORT_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else APP_DIR / "static" / "ort"


def ort_missing(folder: Path) -> str | None:
    """Why onnxruntime-web cannot be served from ``folder``, or None."""
    absent = [n for n in (*ORT_WEB_WASM, *ORT_WEB_WEBGPU) if not (folder / n).is_file()]
    if not absent:
        return None
    return (
        f"in-browser mode is not available: onnxruntime-web is not bundled in {folder} "
        f"({absent[0]} missing); `publisher space` bundles it, or set {ORT_DIR_ENV} to the "
        "dist/ folder of the onnxruntime-web npm package"
    )


def file_url(path: Path) -> str:
    """The URL gradio serves a file under one of its static paths at."""
    return f"/gradio_api/file={Path(path).resolve().as_posix()}"


def model_url(engine: Engine, variant: Variant) -> str:
    """Where the browser downloads ``variant``: the model repo on the Hub, or this Space's
    file route for a local folder."""
    source = engine.source
    if isinstance(source, HubSource):
        from huggingface_hub import constants

        revision = quote(source.revision or "main", safe="")
        return f"{constants.ENDPOINT}/{source.repo_id}/resolve/{revision}/{variant.path}"
    if isinstance(source, LocalSource):
        return file_url(source.fetch(variant.path))
    raise InputError(f"in-browser mode cannot reach files of {source.label}")


def browser_reason(engine: Engine, variant: Variant) -> str | None:
    """Why the browser does not run ``variant``, or None: the files kokoro-js loads (the
    runtime matrix's claim for onnxruntime-web) with a float32 speed input (the server's
    session, which scoring needs anyway, says which)."""
    if kokoro_js_dtype(variant.shape, dict(variant.io), variant.path) is None:
        return "not a file kokoro-js loads (fixed buckets, renamed tensors or its file name)"
    try:
        session, _, _ = engine.session(variant)
    except Exception as exc:  # a broken or missing file: the others still run
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"the server cannot open it ({line[:200]})"
    speed = next((i for i in session.get_inputs() if i.name == variant.io.get("speed")), None)
    if speed is None or speed.type != "tensor(float)":
        return f"its speed input is {speed.type if speed else 'missing'}, not float32"
    return None


def sentence_chunks(engine: Engine, prepared) -> list[str]:
    """The calls the page makes (and the server repeats to compare): one per sentence, so
    the first sentence plays while the rest are synthesized."""
    from publisher.runtime.text import split_sentences, to_ids

    vocab = engine.catalog().vocab
    return [
        c for c in split_sentences(prepared.phonemes, MAX_PHONEMES, vocab) if to_ids(c, vocab)[0]
    ]


@dataclass(frozen=True)
class Request:
    """What one in-browser comparison was asked for (kept on the server for scoring)."""

    text: str
    phoneme_mode: bool
    voice: str
    speed: float
    names: tuple[str, ...]
    stream: bool = True  # play each sentence in the page as soon as it is ready


def plan(engine: Engine, request: Request, ort_folder: Path) -> dict[str, Any]:
    """What the page runs: onnxruntime-web's URLs, the calls (ids, style row, speed, the
    server's own split) and each variant the browser can run, with its URL and tensors."""
    from publisher.runtime.synth import padded_ids, style_row
    from publisher.runtime.text import to_ids

    if why := ort_missing(ort_folder):
        raise InputError(why)
    chosen = engine.select(list(request.names))
    pack = engine.voice(request.voice)
    speed = engine.check_speed(request.speed)
    prepared = engine.prepare(request.text, request.phoneme_mode)
    calls = []
    for chunk in sentence_chunks(engine, prepared):
        ids, _ = to_ids(chunk, engine.catalog().vocab)
        row = style_row(pack, len(ids))
        calls.append({"ids": padded_ids(ids)[0].tolist(), "style": row[0].tolist()})
    variants, skipped = [], []
    for v in chosen:
        if why := browser_reason(engine, v):
            skipped.append(f"{v.name}: {why}")
            continue
        variants.append(
            {"name": v.name, "url": model_url(engine, v), "bytes": v.bytes, "io": dict(v.io)}
        )
    return {
        "ort": {
            "wasm": file_url(ort_folder / ORT_WEB_WASM[0]),
            "webgpu": file_url(ort_folder / ORT_WEB_WEBGPU[0]),
            "dir": file_url(ort_folder) + "/",
        },
        "sample_rate": SAMPLE_RATE,
        "speed": speed,
        "stream": request.stream,
        "calls": calls,
        "variants": variants,
        "skipped": skipped,
    }


@dataclass
class BrowserRun:
    """One variant as the browser ran it, and how it compares with the server's run."""

    name: str
    backend: str = "-"
    browser: str = "-"
    bytes: int | None = None
    download_s: float | None = None
    session_s: float | None = None
    synth_s: float | None = None
    first_audio_s: float | None = None
    wave: np.ndarray | None = None
    durations: np.ndarray | None = None
    error: str | None = None
    server_synth_s: float | None = None
    match: float | None = None  # heard correlation with the server over its own floor

    @property
    def audio_s(self) -> float:
        return 0.0 if self.wave is None else self.wave.size / SAMPLE_RATE

    @property
    def rtf(self) -> float | None:
        return self.synth_s / self.audio_s if self.synth_s and self.audio_s else None

    @property
    def flagged(self) -> bool:
        return self.match is not None and self.match < SAME_AUDIO_MATCH


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) < 1e12 else None


def _text(value: Any, limit: int = 80) -> str:
    return str(value)[:limit] if isinstance(value, str | int | float) else "-"


def parse_results(answer: str, names: set[str]) -> list[BrowserRun]:
    """The page's JSON answer as BrowserRuns (only variants that were asked for); an
    answer that is not one is an InputError."""
    import numpy as np

    if not isinstance(answer, str) or len(answer) > MAX_RESULT_CHARS:
        raise InputError("the browser's answer is missing or too large")
    try:
        data = json.loads(answer)
    except ValueError:
        raise InputError("the browser's answer is not JSON") from None
    if not isinstance(data, dict):
        raise InputError("the browser's answer is not a JSON object")
    if data.get("error"):
        raise InputError(f"the browser could not run the variants: {_text(data['error'], 300)}")
    runs = []
    for raw in data.get("results") or []:
        if not isinstance(raw, dict) or raw.get("name") not in names:
            continue
        run = BrowserRun(raw["name"], _text(raw.get("backend")), _text(raw.get("browser")))
        run.bytes = int(_number(raw.get("bytes")) or 0) or None
        run.download_s, run.session_s = (
            _number(raw.get("download_s")),
            _number(raw.get("session_s")),
        )
        run.synth_s, run.first_audio_s = (
            _number(raw.get("synth_s")),
            _number(raw.get("first_audio_s")),
        )
        run.error = _text(raw["error"], 300) if raw.get("error") else None
        if run.error is None:
            try:
                wave = np.frombuffer(base64.b64decode(raw.get("wave") or "", validate=True), "<f4")
            except (binascii.Error, ValueError, TypeError):
                wave = np.zeros(0, np.float32)
            if not wave.size or wave.size > MAX_AUDIO_S * SAMPLE_RATE:
                run.error = "the browser sent no usable waveform"
            elif not np.all(np.isfinite(wave)):
                run.error = "the browser's output holds NaN or infinite samples"
            else:
                run.wave = wave.astype(np.float32)
                durations = raw.get("durations")
                if isinstance(durations, list) and all(_number(d) is not None for d in durations):
                    run.durations = np.asarray(durations, dtype=np.int64)
        runs.append(run)
    return runs


def hold_to_server(engine: Engine, request: Request, runs: list[BrowserRun]) -> None:
    """Each browser output against two server runs of the same variant and inputs:
    ``match`` is the heard correlation with the first over the two runs' own."""
    pack = engine.voice(request.voice)
    prepared = engine.prepare(request.text, request.phoneme_mode)
    catalog = engine.catalog()
    for run in runs:
        if run.wave is None:
            continue
        variant = catalog.variant(run.name)
        chunks = sentence_chunks(engine, prepared)
        first, second = (
            engine.run(variant, prepared, pack, request.speed, chunks) for _ in range(2)
        )
        if first.error or second.error:
            run.error = f"the server's own run failed: {first.error or second.error}"
            continue
        run.server_synth_s = first.synth_s
        floor, _ = fidelity(first, second)
        heard, _ = fidelity(first, Run(variant, wave=run.wave, durations=run.durations))
        run.match = round(heard / max(floor, 1e-6), 4)
