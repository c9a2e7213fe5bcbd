"""What the client runtimes need of a file, where a fact decides which files they reach
(read from their sources and confirmed by running them; see the conformance matrix)."""

from __future__ import annotations

# kokoro-js 1.2.1 reaches a file through its dtype: onnx/model{suffix}.onnx
KOKORO_JS_DTYPES = {
    "model.onnx": "fp32",
    "model_fp16.onnx": "fp16",
    "model_quantized.onnx": "q8",
    "model_int8.onnx": "int8",
    "model_uint8.onnx": "uint8",
    "model_q4.onnx": "q4",
    "model_q4f16.onnx": "q4f16",
    "model_bnb4.onnx": "bnb4",
}
KOKORO_JS_NAMES = ("input_ids", "style", "speed", "waveform")  # the names it feeds and reads

# onnxruntime-web, the runtime under kokoro-js in the browser: the release the runtime
# matrix runs and the Space serves (``publisher space`` bundles these files of its npm
# package's dist/: the WASM build, and the WebGPU build with its WASM fallback)
ONNXRUNTIME_WEB = "1.30.0"
ORT_WEB_WASM = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ORT_WEB_WEBGPU = (
    "ort.webgpu.min.mjs",
    "ort-wasm-simd-threaded.jsep.mjs",
    "ort-wasm-simd-threaded.jsep.wasm",
)


def kokoro_js_dtype(shape: str, io: dict[str, str], path: str) -> str | None:
    """The kokoro-js dtype that loads this file, or None when kokoro-js cannot reach it
    (fixed buckets, renamed tensors, a file name no dtype maps to, outside onnx/)."""
    if shape != "dynamic" or any(io.get(n) != n for n in KOKORO_JS_NAMES):
        return None
    if not path.startswith("onnx/") or path.count("/") != 1:
        return None
    return KOKORO_JS_DTYPES.get(path.split("/")[1])


# Headless Chromium (the Space's browser test, the onnxruntime-web cell): the browser
# and the flags it runs with here (no sandbox, no GPU, no background traffic).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# sherpa-onnx bundle lexicons, one per accent (publisher/hub/sherpa.py writes them)
SHERPA_LEXICONS = {"us": "lexicon-us-en.txt", "gb": "lexicon-gb-en.txt"}


def sherpa_lexicon_for(voice: str) -> str:
    """The bundle lexicon a voice should speak with: Kokoro's ``b*`` voices are British
    English, the others American. sherpa-onnx takes one per config; given both, it merges
    them, and on the real fp32 bundle every voice then scored worse (docs/runtimes.md)."""
    return SHERPA_LEXICONS["gb" if voice.startswith("b") else "us"]
