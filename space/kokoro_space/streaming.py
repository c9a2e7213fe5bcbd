"""Server-side streaming: the first chosen variant speaks the text sentence by sentence,
each sentence sent to the player as soon as it is synthesized, with the time to first
audio beside the whole text's time (the browser's own streaming is in browser.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from kokoro_space.browser import sentence_chunks
from kokoro_space.engine import SAMPLE_RATE, Engine, InputError, to_int16
from kokoro_space.markdown import md_escape
from kokoro_space.source import SourceError


def stream_sentences(
    engine: Engine, text: object, phoneme_mode: bool, voice: object, speed: object, names: object
) -> Iterator[tuple[Any, str]]:
    """(audio chunk or None, status) per sentence of ``text``, spoken by the first of
    ``names``; a request that cannot be served yields one status and no audio."""
    try:
        variant = engine.select(names)[0]
        pack, speed = engine.voice(voice), engine.check_speed(speed)
        prepared = engine.prepare(text, bool(phoneme_mode))
        chunks = sentence_chunks(engine, prepared)
    except (InputError, SourceError) as err:
        yield None, f"⚠️ {md_escape(err)}"
        return
    start, first, audio_s = time.perf_counter(), None, 0.0
    for i, chunk in enumerate(chunks, 1):
        run = engine.run(variant, prepared, pack, speed, [chunk])
        if run.error or run.wave is None:
            yield (
                None,
                f"⚠️ {md_escape(variant.name)} failed on sentence {i}: {md_escape(run.error)}",
            )
            return
        first = first if first is not None else time.perf_counter() - start
        audio_s += run.audio_s
        status = (
            f"{md_escape(variant.name)}: sentence {i} of {len(chunks)}; first audio after "
            f"{first:.2f} s"
        )
        yield (SAMPLE_RATE, to_int16(run.wave)), status
    total = time.perf_counter() - start
    yield (
        None,
        (
            f"✓ {md_escape(variant.name)} streamed {len(chunks)} sentences ({audio_s:.2f} s of "
            f"audio): first audio after {first:.2f} s, all of it after {total:.2f} s."
        ),
    )


def streaming_section(engine: Engine, inputs: list, fail: Callable[[BaseException], str]) -> None:
    """A button and a streaming player under Compare; ``inputs`` as for Compare, ``fail``
    the UI's status line for an unexpected error (the handler never raises)."""
    with gr.Accordion("Stream the first variant, sentence by sentence", open=False):
        button = gr.Button("Stream", elem_id="stream-btn")
        player = gr.Audio(streaming=True, autoplay=True, interactive=False, label="stream")
        status = gr.Markdown(elem_id="stream-status")

    def handler(text, phoneme_mode, voice, speed, variants):
        try:
            for audio, line in stream_sentences(engine, text, phoneme_mode, voice, speed, variants):
                yield (audio if audio is not None else gr.skip()), line
        except Exception as err:
            yield gr.skip(), fail(err)

    button.click(handler, inputs, [player, status], api_name="stream")
