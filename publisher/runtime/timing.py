"""Word start and end times from a Kokoro graph's ``duration`` output.

A dynamic Kokoro file outputs one duration per token (``[0, ids..., 0]``), in frames of
``SAMPLES_PER_FRAME`` samples; the waveform is exactly their sum. Token i spans the frames
before it to the frames through it. A word is a run of phoneme tokens between spaces and
punctuation (which carry the pauses); its time runs from its first token's start to its
last token's end.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from publisher.runtime.constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from publisher.runtime.errors import InputError


@dataclass(frozen=True)
class Span:
    text: str  # the token's (or word's) phonemes
    start_s: float
    end_s: float


def _word_char(ch: str) -> bool:
    return not ch.isspace() and not unicodedata.category(ch).startswith("P")


def token_spans(phonemes: str, durations: Sequence[int], vocab: Mapping[str, int]) -> list[Span]:
    """Every token's time, pads included ("" for each), end to end from 0 to the length
    of the waveform. ``phonemes``: what was fed (characters outside ``vocab`` dropped, as
    ``text.to_ids`` drops them)."""
    chars = [ch for ch in phonemes if ch in vocab]
    frames = [int(d) for d in durations]
    if len(frames) != len(chars) + 2:
        raise InputError(
            f"{len(frames)} durations for {len(chars)} phonemes: expected one per phoneme "
            "and one per pad (a graph with a duration output, fed [0, ids..., 0])"
        )
    spans, at = [], 0
    for text, count in zip(["", *chars, ""], frames, strict=True):
        start, at = at, at + count
        spans.append(
            Span(
                text, start * SAMPLES_PER_FRAME / SAMPLE_RATE, at * SAMPLES_PER_FRAME / SAMPLE_RATE
            )
        )
    return spans


def word_spans(phonemes: str, durations: Sequence[int], vocab: Mapping[str, int]) -> list[Span]:
    """Each word's phonemes with its start and end in seconds, in order."""
    words: list[Span] = []
    current: list[Span] = []
    for span in [*token_spans(phonemes, durations, vocab), Span(" ", 0.0, 0.0)]:
        if span.text and _word_char(span.text):
            current.append(span)
            continue
        if current:
            text = "".join(s.text for s in current)
            words.append(Span(text, current[0].start_s, current[-1].end_s))
            current = []
    return words
