"""The Gradio UI: Compare, Blind test and Variants tabs over one ``Engine``.

Handlers never raise: a request that cannot be served returns a status message (and shows
a ``gr.Warning``), and a variant that fails only marks its own table row.
"""

from __future__ import annotations

import html
import logging
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from kokoro_space.browser_ui import browser_mode, browser_section
from kokoro_space.engine import (
    SAMPLE_RATE,
    SPEED_RANGE,
    Catalog,
    Comparison,
    Engine,
    InputError,
    Prepared,
    Run,
    Settings,
    spectrogram_image,
    to_int16,
)
from kokoro_space.markdown import fmt as _fmt
from kokoro_space.markdown import md_escape
from kokoro_space.source import SourceError, source_from_env
from kokoro_space.streaming import streaming_section
from kokoro_space.votes import VoteStore

log = logging.getLogger("kokoro_space")

DEFAULT_TEXT = (
    "Kokoro is an open-weight text-to-speech model. "
    "Each variant below speaks this same sentence, so you can hear what precision costs."
)
BLIND_TEXT = "The quick brown fox jumps over the lazy dog, and nobody seems to mind."
TABLE_HEADERS = [
    "variant",
    "file",
    "size MiB",
    "load s",
    "synth s",
    "audio s",
    "RTF",
    "fidelity vs fp32",
    "durations equal",
    "build fidelity",
    "status",
]
FIDELITY_LINE = (
    "Measured on this text. fidelity vs fp32: how alike the two spectrograms are (1 = the "
    "same sound) with each phoneme lined up by the files' own durations, as publisher verify "
    "measures it; the voice source is random, so even two fp32 runs score a little under 1. "
    "durations equal: share of phonemes both files gave the same length. build fidelity: "
    "manifest.json's figure (vs PyTorch)."
)
BOARD_HEADERS = ["variant", "win rate", "wins", "ties", "losses", "votes"]
CHOICE_LABELS = [("A sounds better", "A"), ("B sounds better", "B"), ("No difference", "tie")]


def word_times_markdown(run: Run) -> str:
    """Each word's phonemes and its start-end in seconds, folded under the player."""
    if not run.words:
        return (
            "<details><summary>Word times</summary>\n\nnot available: this file gives no "
            "duration for each phoneme of a whole call</details>"
        )
    rows = "\n".join(
        f"| {md_escape(w.text)} | {w.start_s:.2f} | {w.end_s:.2f} |" for w in run.words
    )
    return (
        "<details><summary>Word times</summary>\n\n| word (phonemes) | start s | end s |\n"
        f"|---|---:|---:|\n{rows}\n\n</details>"
    )


@dataclass
class SpaceApp:
    """Handlers for the UI (also called directly by tests)."""

    engine: Engine
    votes: VoteStore
    rng: random.Random

    # ------------------------------------------------------------------ helpers
    def slots(self) -> int:
        return self.engine.settings.max_compare

    def _catalog_or_none(self) -> tuple[Catalog | None, str]:
        try:
            return self.engine.catalog(), ""
        except SourceError as err:
            return None, str(err)
        except Exception as err:  # never let a broken repo stop the page from rendering
            log.exception("reading the catalog failed")
            return None, f"{type(err).__name__}: {err}"

    def header(self) -> str:
        catalog, error = self._catalog_or_none()
        src = md_escape(self.engine.source.label)
        if catalog is None:
            return (
                f"⚠️ **The model files cannot be read** ({src}): {md_escape(error)}. "
                "Reload the page to try again."
            )
        parts = [f"Model files: **{src}**, {len(catalog.variants)} variants."]
        if catalog.synthetic:
            parts.append(
                "⚠️ These are *synthetic* builds (random weights): expect noise, not speech."
            )
        elif catalog.recovered:
            parts.append(
                "These builds use weights *recovered* from an ONNX export: an approximation "
                "of hexgrad's Kokoro-82M, not the original."
            )
        if catalog.skipped:
            parts.append("Skipped manifest entries: " + md_escape("; ".join(catalog.skipped)))
        return " ".join(parts)

    def variant_choices(self, catalog: Catalog) -> list[tuple[str, str]]:
        return [(v.label, v.name) for v in catalog.variants.values()]

    def variants_markdown(self) -> str:
        catalog, error = self._catalog_or_none()
        if catalog is None:
            return f"No variants to list: {md_escape(error)}"
        lines = [
            "| variant | file | shape | size MiB | weights | spectral corr. (build) "
            "| log-mel dist. (build) | latency s / RTF (bench) | description |",
            "|---|---|---|---:|---|---:|---:|---|---|",
        ]
        for v in catalog.variants.values():
            ref = " (reference)" if v.name == catalog.reference else ""
            cells = [
                f"{v.name}{ref}",
                v.path,
                v.shape,
                f"{v.size_mib:.2f}",
                v.params_by_dtype,
                v.spectral_correlation,
                v.log_mel_distance,
                v.latency,
                v.description,
            ]
            lines.append("| " + " | ".join(md_escape(c) for c in cells) + " |")
        lines.append(
            "\nFigures measured when the variants were built (`manifest.json`); the Compare tab "
            "measures again on your text, against the float32 variant."
        )
        return "\n".join(lines)

    def _fail(self, err: BaseException) -> str:
        if isinstance(err, InputError | SourceError):
            message = str(err)
        else:
            log.exception("request failed")
            message = f"unexpected error: {type(err).__name__}: {err}"
        gr.Warning(html.escape(message[:500]))
        return f"⚠️ {md_escape(message)}"

    # ------------------------------------------------------------------ compare
    def _empty_compare(self, status: str) -> list[Any]:
        hidden = [gr.update(value=None, visible=False) for _ in range(3 * self.slots())]
        return [status, "", [], *hidden]

    def compare(
        self, text: str, phoneme_mode: bool, voice: str, speed: float, variants: list[str]
    ) -> list[Any]:
        """status, phonemes, table, then per slot: audio, spectrogram, word times."""
        start = time.perf_counter()
        try:
            result = self.engine.compare(text, phoneme_mode, voice, speed, variants)
        except Exception as err:
            return self._empty_compare(self._fail(err))
        rows = [self._row(r, result.reference) for r in result.runs]
        audios, images, words = [], [], []
        for i in range(self.slots()):
            run = result.runs[i] if i < len(result.runs) else None
            if run is None or run.wave is None:
                label = f"{run.variant.name}: failed" if run else None
                audios.append(gr.update(value=None, visible=run is not None, label=label))
                images.append(gr.update(value=None, visible=False))
                words.append(gr.update(value=None, visible=False))
                continue
            words.append(gr.update(value=word_times_markdown(run), visible=True))
            audios.append(
                gr.update(
                    value=(SAMPLE_RATE, to_int16(run.wave)), visible=True, label=run.variant.label
                )
            )
            images.append(
                gr.update(
                    value=spectrogram_image(run.wave, run.variant.name),
                    visible=True,
                    label=f"{run.variant.name} log-mel spectrogram",
                )
            )
        status = self._compare_status(result, time.perf_counter() - start)
        return [status, result.prepared.phonemes, rows, *audios, *images, *words]

    def _row(self, run: Run, reference: str | None) -> list[str]:
        v = run.variant
        fidelity = _fmt(run.fidelity, 5)
        if v.name == reference and run.fidelity is not None:
            fidelity = "reference"
        if run.error:
            status = f"failed: {run.error}"
        else:
            status = "ok, session cached" if run.cached else "ok"
            if run.chunks > 1:
                status += f", {run.chunks} chunks"
        return [
            v.name,
            v.path,
            f"{v.size_mib:.2f}",
            _fmt(run.load_s),
            _fmt(run.synth_s),
            _fmt(run.audio_s if run.wave is not None else None, 2),
            _fmt(run.rtf),
            fidelity,
            _fmt(run.durations_equal, 3),
            v.spectral_correlation,
            status,
        ]

    def _compare_status(self, result: Comparison, seconds: float) -> str:
        p: Prepared = result.prepared
        ok = [r for r in result.runs if not r.error]
        failed = [r for r in result.runs if r.error]
        lines = [
            f"✓ {len(ok)} of {len(result.runs)} variants spoke {p.n_ids} phonemes "
            f"({md_escape(p.g2p)}) in {seconds:.2f} s."
        ]
        if p.dropped:
            lines.append(
                f"Ignored characters outside Kokoro's vocabulary: `{md_escape(p.dropped)}`"
            )
        if failed:
            names = ", ".join(f"{r.variant.name} ({r.error})" for r in failed)
            gr.Warning(html.escape(f"failed: {names}"[:500]))
            lines.append(f"⚠️ Failed: {md_escape(names)}")
        lines += [md_escape(n) for n in result.notes]
        return "  \n".join(lines)

    # ------------------------------------------------------------------ blind test
    def blind_pair(self, text: str, voice: str, state: dict | None) -> list[Any]:
        """audio A, audio B, status, reveal, vote choice, new state."""
        try:
            catalog = self.engine.catalog()
            if len(catalog.variants) < 2:
                raise InputError("The blind test needs at least two variants in the repo.")
            pack = self.engine.voice(voice)
            prepared = self.engine.prepare(text, False)
            a, b = self.rng.sample(list(catalog.variants.values()), 2)
            runs = [self.engine.run(v, prepared, pack, 1.0) for v in (a, b)]
            failed = [r for r in runs if r.error]
            if failed:
                raise InputError(
                    "A variant failed, so this pair cannot be judged: "
                    + "; ".join(r.error or "" for r in failed)
                )
        except Exception as err:
            status = self._fail(err)
            return [None, None, status, "", None, None]
        new_state = {
            "a": a.name,
            "b": b.name,
            "voice": voice,
            "chars": len(text),
            "pair": uuid.uuid4().hex,
        }
        status = "Listen to **A** and **B**, then vote. The names are shown after your vote."
        return [
            (SAMPLE_RATE, to_int16(runs[0].wave)),
            (SAMPLE_RATE, to_int16(runs[1].wave)),
            status,
            "",
            None,
            new_state,
        ]

    def vote(self, choice: str, state: dict | None) -> list[Any]:
        """reveal, leaderboard, new state (cleared: one vote per pair), status."""
        if not state or not isinstance(state, dict) or "a" not in state:
            msg = "Play a random pair first, then vote."
            gr.Warning(msg)
            return [f"⚠️ {msg}", self.leaderboard(), state, msg]
        if choice not in ("A", "B", "tie"):
            msg = "Pick A, B or “No difference” before voting."
            gr.Warning(msg)
            return [f"⚠️ {msg}", self.leaderboard(), state, msg]
        try:
            fresh = self.votes.record(
                self.engine.source.label,
                state["a"],
                state["b"],
                choice,
                str(state.get("voice", "")),
                int(state.get("chars", 0)),
                pair=str(state.get("pair") or uuid.uuid4().hex),
            )
        except Exception as err:
            log.exception("recording a vote failed")
            msg = f"Could not record the vote: {type(err).__name__}: {err}"
            gr.Warning(html.escape(msg))
            return [f"⚠️ {md_escape(msg)}", self.leaderboard(), state, msg]
        if not fresh:
            msg = "This pair already has its vote; play another pair."
            return [f"⚠️ {msg}", self.leaderboard(), None, msg]
        verdict = {"A": f"you preferred A ({state['a']})", "B": f"you preferred B ({state['b']})"}
        reveal = (
            f"**A** was **{md_escape(state['a'])}**, **B** was **{md_escape(state['b'])}**: "
            + md_escape(verdict.get(choice, "you heard no difference"))
            + ". Vote recorded."
        )
        return [reveal, self.leaderboard(), None, "Thanks! Play another pair."]

    def leaderboard(self) -> list[list[str]]:
        try:
            standings = self.votes.leaderboard(self.engine.source.label)
        except Exception:
            log.exception("reading the leaderboard failed")
            return []
        return [
            [
                s.variant,
                f"{100 * s.win_rate:.0f}%",
                str(s.wins),
                str(s.ties),
                str(s.losses),
                str(s.votes),
            ]
            for s in standings
        ]

    # ------------------------------------------------------------------ page load
    def on_load(self) -> list[Any]:
        """header, variants/voice dropdowns (compare, blind), variants table."""
        catalog, _ = self._catalog_or_none()
        if catalog is None:
            empty = gr.update(choices=[], value=None)
            return [self.header(), empty, empty, empty, self.variants_markdown()]
        voices = gr.update(choices=catalog.voices, value=catalog.default_voice())
        return [
            self.header(),
            gr.update(choices=self.variant_choices(catalog), value=catalog.default_selection()),
            voices,
            voices,
            self.variants_markdown(),
        ]


def build_demo(
    engine: Engine | None = None,
    votes: VoteStore | None = None,
    seed: int | None = None,
    ort_folder: Path | None = None,
) -> gr.Blocks:
    """The Space's Blocks. Without arguments: source from the environment (see source.py);
    onnxruntime-web for the in-browser mode from ``ort_folder`` (default: browser.ort_dir)."""
    if engine is None:
        try:
            source = source_from_env()
        except SourceError as err:
            source = _Unconfigured(str(err))
        engine = Engine(source, Settings.from_env())
    app = SpaceApp(engine, votes or VoteStore(), random.Random(seed))
    in_browser = browser_mode(engine, app.votes, app._fail, ort_folder)
    catalog, _ = app._catalog_or_none()
    variant_choices = app.variant_choices(catalog) if catalog else []
    voices = catalog.voices if catalog else []
    voice = catalog.default_voice() if catalog else None

    with gr.Blocks(title="Kokoro-82M ONNX variants") as demo:
        demo.space_app = app  # handlers, for tests and embedding
        gr.Markdown(
            "# Kokoro-82M ONNX variants\n"
            "Hear what each precision does to the voice: compare variants side by side, "
            "or judge a random pair blind."
        )
        header = gr.Markdown(app.header(), elem_id="source-status")
        with gr.Tab("Compare"):
            with gr.Row():
                with gr.Column(scale=3):
                    text = gr.Textbox(DEFAULT_TEXT, lines=4, label="Text", elem_id="compare-text")
                    phoneme_mode = gr.Checkbox(
                        False,
                        label="Type phonemes directly (skip G2P)",
                        info="Kokoro's IPA-like phoneme alphabet; other characters are ignored.",
                    )
                with gr.Column(scale=2):
                    variants = gr.Dropdown(
                        variant_choices,
                        value=catalog.default_selection() if catalog else None,
                        multiselect=True,
                        max_choices=app.slots(),
                        allow_custom_value=True,  # checked against the manifest by the engine
                        label="Variants (two or more)",
                        elem_id="compare-variants",
                    )
                    voice_dd = gr.Dropdown(
                        voices, value=voice, label="Voice", allow_custom_value=True
                    )
                    speed = gr.Slider(*SPEED_RANGE, value=1.0, step=0.05, label="Speed")
                    compare_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
            status = gr.Markdown(elem_id="compare-status")
            phonemes = gr.Textbox(label="Phonemes fed to the models", interactive=False)
            table = gr.Dataframe(
                headers=TABLE_HEADERS,
                label=FIDELITY_LINE,
                interactive=False,
                wrap=True,
                elem_id="compare-table",
            )
            audios, images, words = [], [], []
            for _ in range(app.slots()):
                with gr.Row():
                    with gr.Column(scale=1):
                        audios.append(gr.Audio(visible=False, interactive=False))
                        words.append(gr.Markdown(visible=False))
                    images.append(gr.Image(visible=False, interactive=False, format="png", scale=2))
            streaming_section(engine, [text, phoneme_mode, voice_dd, speed, variants], app._fail)
            browser_section(in_browser, [text, phoneme_mode, voice_dd, speed, variants])
        with gr.Tab("Blind test"):
            gr.Markdown(
                "Two variants picked at random speak the same text as **A** and **B**. "
                "Vote for the one that sounds better; the names are shown after your vote."
            )
            with gr.Row():
                blind_text = gr.Textbox(BLIND_TEXT, lines=2, label="Text", scale=3)
                blind_voice = gr.Dropdown(
                    voices, value=voice, label="Voice", allow_custom_value=True, scale=1
                )
            pair_btn = gr.Button("Play a random pair", variant="primary", elem_id="blind-btn")
            with gr.Row():
                audio_a = gr.Audio(label="A", interactive=False)
                audio_b = gr.Audio(label="B", interactive=False)
            blind_status = gr.Markdown()
            choice = gr.Radio(CHOICE_LABELS, label="Which sounds better?")
            vote_btn = gr.Button("Vote", elem_id="vote-btn")
            reveal = gr.Markdown(elem_id="blind-reveal")
            board = gr.Dataframe(
                headers=BOARD_HEADERS,
                label="Leaderboard (win rate = wins / votes; a tie is a vote, not a win)",
                interactive=False,
            )
            state = gr.State(None)
        with gr.Tab("Variants"):
            variants_md = gr.Markdown(app.variants_markdown())

        compare_btn.click(
            app.compare,
            [text, phoneme_mode, voice_dd, speed, variants],
            [status, phonemes, table, *audios, *images, *words],
            api_name="compare",
        )
        pair_btn.click(
            app.blind_pair,
            [blind_text, blind_voice, state],
            [audio_a, audio_b, blind_status, reveal, choice, state],
            api_name="blind_pair",
        )
        vote_btn.click(
            app.vote, [choice, state], [reveal, board, state, blind_status], api_name="vote"
        )
        demo.load(app.leaderboard, None, board, api_name="leaderboard")
        if catalog is None:  # the repo could not be read at start: try again on each page load
            demo.load(
                app.on_load,
                None,
                [header, variants, voice_dd, blind_voice, variants_md],
                api_visibility="private",
            )
    demo.queue(default_concurrency_limit=engine.settings.concurrency, max_size=64)
    return demo


class _Unconfigured:
    """A source that only says why there is none (the page still renders)."""

    def __init__(self, reason: str) -> None:
        self.label = "not configured"
        self.reason = reason

    def fetch(self, relpath: str):
        raise SourceError(self.reason)

    def read_json(self, relpath: str):
        raise SourceError(self.reason)
