"""The streaming family (b16..b128) on real speech (a measurement, not a test).

Upstream torch predicts the durations of every corpus sentence (speech set and evaluation
set) with its own voice; for each bucket recipe: how many words of real speech one call
holds (the tighter of its phoneme and frame limits, at the corpus's mean phonemes and
frames per word), the share of sentences that overflow one call (more than B-2 phonemes or
more than F frames), and the milliseconds of speech the 480-samples-per-frame rule of
msgflux/Kokoro-82M-streaming-onnx would cut from the sentences that fit, where ours keeps
all 600 samples per frame. Usage:

    python scripts/streaming_report.py --checkpoint recovered:kokoro-v1.0
"""

from __future__ import annotations

import argparse

BUCKETS = ("b16", "b24", "b32", "b48", "b64", "b96", "b128")


def main() -> None:
    from publisher.export.bucket.shape import ANCHOR_SAMPLES_PER_FRAME, bucket_shape
    from publisher.model.kmodel import run_torch
    from publisher.model.sources import open_checkpoint
    from publisher.recipe.loader import load_recipe
    from publisher.runtime.constants import SAMPLE_RATE, SAMPLES_PER_FRAME
    from publisher.runtime.corpus import load_corpus
    from publisher.runtime.synth import style_row

    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="recovered:kokoro-v1.0")
    args = ap.parse_args()
    ckpt = open_checkpoint(args.checkpoint)
    model = ckpt.build_model()
    corpus = load_corpus()
    sentences = [*corpus.speech, *corpus.eval]
    rows = []  # (phonemes, frames, words)
    for c in sentences:
        ids = c.ids(ckpt.config["vocab"])
        voice = c.voice if c.voice in ckpt.voices else ckpt.sample_voice
        out = run_torch(model, ids, style_row(ckpt.voices[voice], len(ids)), c.speed)
        rows.append((len(ids), int(out.durations.sum()), len(c.text.split())))
    words = sum(r[2] for r in rows)
    ph_per_word = sum(r[0] for r in rows) / words
    fr_per_word = sum(r[1] for r in rows) / words
    cut_ms = (SAMPLES_PER_FRAME - ANCHOR_SAMPLES_PER_FRAME) / SAMPLE_RATE * 1000
    print(
        f"{len(rows)} sentences, {words} words: {ph_per_word:.2f} phonemes and "
        f"{fr_per_word:.2f} frames ({fr_per_word * SAMPLES_PER_FRAME / SAMPLE_RATE * 1000:.0f}"
        f" ms) per word"
    )
    print(
        "| recipe | B | F | words per call | limited by | sentences that overflow | "
        "ms the 480 rule would cut (mean per fitting sentence) |"
    )
    print("|---|---:|---:|---:|---|---:|---:|")
    for name in BUCKETS:
        shape = bucket_shape(load_recipe(name))
        by_ph = (shape.bucket - 2) / ph_per_word
        by_fr = shape.frames / fr_per_word
        fits = [r for r in rows if r[0] <= shape.bucket - 2 and r[1] <= shape.frames]
        cut = sum(r[1] * cut_ms for r in fits) / len(fits) if fits else 0.0
        print(
            f"| {name} | {shape.bucket} | {shape.frames} | {min(by_ph, by_fr):.1f} | "
            f"{'phonemes' if by_ph <= by_fr else 'frames'} | "
            f"{1 - len(fits) / len(rows):.0%} ({len(rows) - len(fits)}/{len(rows)}) | "
            f"{cut:.0f} |"
        )


if __name__ == "__main__":
    main()
