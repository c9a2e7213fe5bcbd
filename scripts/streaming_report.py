"""The streaming family (b16..b128) on real speech (a measurement, not a test).

Upstream torch predicts the durations of every corpus sentence (speech set and evaluation
set) with its own voice. Two tables:

1. Per bucket recipe: how many words of real speech one call holds (the tighter of its
   phoneme and frame limits, at the corpus's mean phonemes and frames per word), the share
   of sentences that overflow one call (more than B-2 phonemes or more than F frames), and
   the milliseconds of speech the 480-samples-per-frame rule of
   msgflux/Kokoro-82M-streaming-onnx would cut from the sentences that fit, where ours
   keeps all 600 samples per frame.
2. The calls a streaming server makes: each sentence cut at B-2 phonemes on word and clause
   boundaries (``runtime/text.split_phonemes``), each piece's frames (its two pads
   included) predicted by upstream for that piece alone; the share of calls the recipe's
   F holds and the frames the 99th percentile needs, at ``--speed`` (default 1). This is
   what sized the default ``export.alignment_frames`` (``Export.resolved_alignment_frames``).

Only durations are needed, so the pieces run kokoro's text side alone (its own modules, in
``KModel.forward_with_tokens``'s order, up to the predicted durations); the script checks
that against a full ``run_torch`` on a few pieces first. Usage:

    python scripts/streaming_report.py --checkpoint recovered:kokoro-v1.0 [--speed 1.0]
"""

from __future__ import annotations

import argparse

BUCKETS = ("b16", "b24", "b32", "b48", "b64", "b96", "b128")


def text_side_durations(model, ids: list[int], style, speed: float):
    """Upstream's predicted frames per token (pads included), without the decoder."""
    import numpy as np
    import torch

    input_ids = torch.LongTensor([[0, *ids, 0]])
    n = input_ids.shape[-1]
    lengths = torch.full((1,), n, dtype=torch.long)
    mask = torch.gt(torch.arange(n).unsqueeze(0) + 1, lengths.unsqueeze(1))
    ref_s = torch.from_numpy(np.asarray(style, dtype=np.float32)).reshape(1, -1)
    with torch.no_grad():
        bert = model.bert(input_ids, attention_mask=(~mask).int())
        d_en = model.bert_encoder(bert).transpose(-1, -2)
        d = model.predictor.text_encoder(d_en, ref_s[:, 128:], lengths, mask)
        x, _ = model.predictor.lstm(d)
        frames = torch.sigmoid(model.predictor.duration_proj(x)).sum(axis=-1) / speed
    return torch.round(frames).clamp(min=1).long().reshape(-1).numpy()


def whole_sentences(ckpt, model, sentences) -> list[tuple[int, int, int]]:
    """(phonemes, frames, words) of each sentence spoken whole, at its corpus speed."""
    from publisher.runtime.synth import style_row

    rows = []
    for c in sentences:
        ids = c.ids(ckpt.config["vocab"])
        voice = c.voice if c.voice in ckpt.voices else ckpt.sample_voice
        style = style_row(ckpt.voices[voice], len(ids))
        frames = text_side_durations(model, ids, style, c.speed)
        rows.append((len(ids), int(frames.sum()), len(c.text.split())))
    return rows


def call_frames(ckpt, model, sentences, bucket: int, speed: float):
    """Frames of every call a B-token bucket makes for ``sentences`` (numpy array)."""
    import numpy as np

    from publisher.runtime.synth import style_row
    from publisher.runtime.text import split_phonemes

    vocab, need = ckpt.config["vocab"], []
    for c in sentences:
        voice = c.voice if c.voice in ckpt.voices else ckpt.sample_voice
        for piece in split_phonemes(c.phonemes, bucket - 2, vocab):
            ids = [vocab[ch] for ch in piece if ch in vocab]
            if ids:
                style = style_row(ckpt.voices[voice], len(ids))
                need.append(int(text_side_durations(model, ids, style, speed).sum()))
    return np.array(need)


def check_text_side(ckpt, model, sentences) -> None:
    import numpy as np

    from publisher.model.kmodel import run_torch
    from publisher.runtime.synth import style_row

    for c in sentences[:3]:
        ids = c.ids(ckpt.config["vocab"])[:30]
        style = style_row(ckpt.voices[ckpt.sample_voice], len(ids))
        full = run_torch(model, ids, style, 1.0).durations
        if not np.array_equal(full, text_side_durations(model, ids, style, 1.0)):
            raise SystemExit("the text-side durations differ from run_torch's: fix the script")


def main() -> None:
    import numpy as np

    from publisher.export.bucket.shape import ANCHOR_SAMPLES_PER_FRAME, bucket_shape
    from publisher.model.sources import open_checkpoint
    from publisher.recipe.loader import load_recipe
    from publisher.runtime.constants import SAMPLE_RATE, SAMPLES_PER_FRAME
    from publisher.runtime.corpus import load_corpus

    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="recovered:kokoro-v1.0")
    ap.add_argument("--speed", type=float, default=1.0)
    args = ap.parse_args()
    ckpt = open_checkpoint(args.checkpoint)
    model = ckpt.build_model().eval()
    corpus = load_corpus()
    sentences = [*corpus.speech, *corpus.eval]
    check_text_side(ckpt, model, sentences)
    rows = whole_sentences(ckpt, model, sentences)
    words = sum(r[2] for r in rows)
    ph_per_word = sum(r[0] for r in rows) / words
    fr_per_word = sum(r[1] for r in rows) / words
    cut_ms = (SAMPLES_PER_FRAME - ANCHOR_SAMPLES_PER_FRAME) / SAMPLE_RATE * 1000
    print(
        f"{len(rows)} sentences, {words} words: {ph_per_word:.2f} "
        f"phonemes and {fr_per_word:.2f} frames "
        f"({fr_per_word * SAMPLES_PER_FRAME / SAMPLE_RATE * 1000:.0f} ms) per word"
    )
    print(
        "| recipe | B | F | words per call | limited by | sentences that overflow | "
        "ms the 480 rule would cut (mean per fitting sentence) |"
    )
    print("|---|---:|---:|---:|---|---:|---:|")
    shapes = {name: bucket_shape(load_recipe(name)) for name in BUCKETS}
    for name, shape in shapes.items():
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
    print()
    print(f"Calls at speed {args.speed}:")
    print(
        "| recipe | calls | frames a call: mean / 99th pct / max | F | calls F holds | 2B+8 held |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, shape in shapes.items():
        need = call_frames(ckpt, model, sentences, shape.bucket, args.speed)
        old = 2 * shape.bucket + 8
        print(
            f"| {name} | {need.size} | {need.mean():.1f} / {np.percentile(need, 99):.0f} / "
            f"{need.max()} | {shape.frames} | {np.mean(need <= shape.frames):.1%} | "
            f"{np.mean(need <= old):.1%} |"
        )


if __name__ == "__main__":
    main()
