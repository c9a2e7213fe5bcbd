"""Measure a recovered checkpoint against the ONNX file it came from (not a test).

For a few English sentences: synthesize with the torch model on the recovered weights
(upstream Kokoro's torch.istft path) and with the source ONNX file, each with its own
random source; report total frames (the int8 file has no duration output, so lengths
stand in for durations) and spectral correlation where the lengths agree, plus the
torch-vs-torch noise floor. Usage:

    python scripts/recovery_report.py --checkpoint recovered:kokoro-v1.0 --voice af_heart
"""

from __future__ import annotations

import argparse
import time

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Kokoro is a small text to speech model with eighty two million parameters.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
)


def main() -> None:
    import numpy as np
    import torch

    from publisher.model.kmodel import run_torch
    from publisher.model.sources import open_checkpoint
    from publisher.runtime.metrics import spectral_correlation
    from publisher.runtime.synth import open_session, run_onnx, style_row
    from publisher.runtime.text import phonemize, to_ids

    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="recovered:kokoro-v1.0")
    ap.add_argument("--voice", default="af_heart")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ckpt = open_checkpoint(args.checkpoint)
    print(f"open {args.checkpoint}: {time.perf_counter() - t0:.1f} s; {ckpt.provenance}")
    model = ckpt.build_model()  # upstream torch.istft path
    session = open_session(ckpt.files["onnx"])
    voice = ckpt.voices[args.voice]
    for text in SENTENCES:
        ids, _ = to_ids(phonemize(text, g2p="misaki.espeak"))
        style = style_row(voice, len(ids))
        torch.manual_seed(0)
        ref = run_torch(model, ids, style)
        torch.manual_seed(1)
        again = run_torch(model, ids, style)
        onnx = run_onnx(session, ids, style)
        frames_t, frames_o = ref.waveform.size // 600, onnx.waveform.size // 600
        corr = spectral_correlation(ref.waveform, onnx.waveform) if frames_t == frames_o else None
        floor = spectral_correlation(ref.waveform, again.waveform)
        rms = float(np.sqrt(np.mean(onnx.waveform**2)) / np.sqrt(np.mean(ref.waveform**2)))
        print(
            f"{len(ids):4d} phonemes | frames torch {frames_t} onnx {frames_o} | "
            f"spectral corr {corr if corr is None else round(corr, 5)} | "
            f"torch-vs-torch {floor:.5f} | rms onnx/torch {rms:.3f}"
        )


if __name__ == "__main__":
    main()
