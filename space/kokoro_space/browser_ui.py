"""The Compare tab's "Run in my browser" section: handlers and components (browser.py has
what they do). Handlers never raise, like the rest of the UI."""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from kokoro_space.browser import (
    BrowserRun,
    Request,
    hold_to_server,
    ort_dir,
    parse_results,
    plan,
)
from kokoro_space.engine import Engine
from kokoro_space.markdown import fmt as _fmt
from kokoro_space.markdown import md_escape
from kokoro_space.source import LocalSource
from kokoro_space.votes import VoteStore
from publisher.runtime.constants import SAME_AUDIO_MATCH

log = logging.getLogger("kokoro_space")
JS_DIR = Path(__file__).resolve().parent / "js"
BROWSER_HEADERS = [
    "variant",
    "backend",
    "browser",
    "download MiB",
    "download s",
    "session s",
    "synth s",
    "RTF",
    "first audio s",
    "server synth s",
    "server RTF",
    "sounds like the server",
    "verdict",
]
SUMMARY_HEADERS = ["backend", "variant", "runs", "flagged", "median match", "median RTF"]
MATCH_LINE = (
    "sounds like the server: the browser's audio against this server's onnxruntime run of "
    "the same file and inputs (spectral correlation, phoneme by phoneme), over how alike two "
    f"server runs are (the voice source is random); below {SAME_AUDIO_MATCH} it is flagged."
)


def run_in_browser_js() -> str:
    """The click's JavaScript: run_in_browser.js with choose_backend.js inlined."""
    choose = (JS_DIR / "choose_backend.js").read_text(encoding="utf-8")
    choose = "\n".join(line for line in choose.splitlines() if not line.startswith("//"))
    main = (JS_DIR / "run_in_browser.js").read_text(encoding="utf-8")
    body = "\n".join(line for line in main.splitlines() if not line.startswith("//"))
    return body.replace("__CHOOSE_BACKEND__", f"({choose.strip()})")


@dataclass
class BrowserMode:
    engine: Engine
    votes: VoteStore
    ort_folder: Path
    fail: Callable[[BaseException], str]  # the UI's one status line for a failed request

    def serve_files(self) -> None:
        """Let gradio serve onnxruntime-web (and a local folder's model files) with the
        types a browser needs for a module import and a WASM compile."""
        mimetypes.add_type("text/javascript", ".mjs")
        mimetypes.add_type("application/wasm", ".wasm")
        paths = [self.ort_folder]
        if isinstance(self.engine.source, LocalSource):
            paths.append(self.engine.source.root)
        gr.set_static_paths(paths=[p for p in paths if Path(p).is_dir()])

    def start(self, text, phoneme_mode, voice, speed, variants, stream=True) -> list[Any]:
        """The plan for the page (JSON), the request kept for scoring, a status line."""
        names = (variants,) if isinstance(variants, str) else tuple(variants or ())
        try:
            speed = self.engine.check_speed(speed)
            request = Request(
                str(text or ""), bool(phoneme_mode), str(voice or ""), speed, names, bool(stream)
            )
            steps = plan(self.engine, request, self.ort_folder)
        except Exception as err:
            return ["", None, self.fail(err)]
        lines = []
        if steps["variants"]:
            names_run = ", ".join(v["name"] for v in steps["variants"])
            lines.append(f"Your browser is downloading and running: {md_escape(names_run)} ...")
        else:
            lines.append("⚠️ None of the chosen variants runs in the browser.")
        lines += [f"Not run in the browser: {md_escape(s)}" for s in steps["skipped"]]
        return [json.dumps(steps), request if steps["variants"] else None, "  \n".join(lines)]

    def score(self, request: Request | None, answer: str) -> list[Any]:
        """status, the per-variant table, the per-backend summary."""
        if not isinstance(request, Request):
            return ["Nothing ran in the browser yet.", [], self.summary()]
        try:
            runs = parse_results(answer, set(request.names))
            hold_to_server(self.engine, request, runs)
        except Exception as err:
            return [self.fail(err), [], self.summary()]
        for run in runs:
            if run.match is not None:
                self._record(run)
        return [self._status(runs), [self._row(r) for r in runs], self.summary()]

    def summary(self) -> list[list[str]]:
        try:
            rows = self.votes.browser_summary(self.engine.source.label)
        except Exception:
            log.exception("reading the browser runs failed")
            return []
        return [
            [r.backend, r.variant, str(r.runs), str(r.flagged)]
            + [_fmt(r.median_match, 4), _fmt(r.median_rtf)]
            for r in rows
        ]

    def report_file(self) -> str | None:
        """The per-backend table as a ``BrowserReport`` JSON file, for the model card
        (``publisher stage --browser-report FILE``); None when it cannot be read."""
        try:
            report = self.votes.browser_report(self.engine.source.label)
        except Exception:
            log.exception("reading the browser runs failed")
            return None
        # beside the votes database (the Space's own data), replaced whole on each click:
        # one file, not a new temporary folder per download
        path = self.votes.path.parent / "browser_report.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".browser_report.", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(report, indent=1))
            os.replace(tmp, path)
        except OSError:
            log.exception("writing the browser report failed")
            return None
        return str(path)

    def _record(self, run: BrowserRun) -> None:
        try:
            self.votes.record_browser_run(
                self.engine.source.label,
                run.name,
                run.backend,
                run.browser,
                run.match,
                run.rtf,
                run.flagged,
            )
        except Exception:
            log.exception("recording a browser run failed")

    def _status(self, runs: list[BrowserRun]) -> str:
        ok = [r for r in runs if r.match is not None]
        lines = [f"✓ {len(ok)} of {len(runs)} variants ran in your browser and were compared."]
        for r in runs:
            if r.flagged:
                lines.append(
                    f"⚠️ **{md_escape(r.name)}** does not sound like the server's run in "
                    f"{md_escape(r.backend)} (match {r.match:.3f} < {SAME_AUDIO_MATCH})."
                )
                gr.Warning(f"{r.name}: the browser's audio differs from the server's")
            elif r.error:
                lines.append(f"⚠️ {md_escape(r.name)}: {md_escape(r.error)}")
        return "  \n".join(lines)

    def _row(self, r: BrowserRun) -> list[str]:
        mib = None if r.bytes is None else r.bytes / 2**20
        server_rtf = r.server_synth_s / r.audio_s if r.server_synth_s and r.audio_s else None
        if r.error:
            verdict = f"failed: {r.error}"
        elif r.match is None:
            verdict = "not compared"
        else:
            verdict = "FLAGGED: differs from the server" if r.flagged else "ok"
        return [
            r.name,
            r.backend,
            r.browser,
            _fmt(mib, 1),
            _fmt(r.download_s, 2),
            _fmt(r.session_s, 2),
            _fmt(r.synth_s, 2),
            _fmt(r.rtf),
            _fmt(r.first_audio_s, 2),
            _fmt(r.server_synth_s, 2),
            _fmt(server_rtf),
            _fmt(r.match, 4),
            verdict,
        ]


def browser_section(mode: BrowserMode, inputs: list) -> None:
    """The components and events, inside the Compare tab; ``inputs`` are the tab's text,
    phoneme mode, voice, speed and variants."""
    with gr.Accordion("Run in my browser (onnxruntime-web)", open=False):
        gr.Markdown(
            "Downloads the chosen files from the model repo and runs them in this browser "
            "with onnxruntime-web (WebGPU when the browser offers it, WASM otherwise), on the "
            "same phonemes as the server; then the server checks each result against its own."
        )
        with gr.Row():
            button = gr.Button("Run in my browser", elem_id="browser-btn", scale=1)
            stream = gr.Checkbox(
                True,
                label="Play each sentence as soon as it is synthesized",
                elem_id="browser-stream",
                scale=2,
            )
        status = gr.Markdown(elem_id="browser-status")
        gr.HTML('<div id="browser-players"></div>')
        table = gr.Dataframe(
            headers=BROWSER_HEADERS,
            label=MATCH_LINE,
            interactive=False,
            wrap=True,
            elem_id="browser-table",
        )
        summary = gr.Dataframe(
            headers=SUMMARY_HEADERS,
            label="Every in-browser run so far, per backend (no personal data is kept)",
            interactive=False,
            elem_id="browser-summary",
        )
        with gr.Row():
            export = gr.Button("Report for the model card (JSON)", elem_id="browser-export")
            report = gr.File(
                label="publisher stage --browser-report FILE", elem_id="browser-report", height=90
            )
        plan_box = gr.Textbox(visible=False)
        answer_box = gr.Textbox(visible=False)
        request = gr.State(None)
    export.click(mode.report_file, None, report, api_name="browser_report")
    started = [plan_box, request, status]
    button.click(mode.start, [*inputs, stream], started, api_visibility="private").then(
        None, [plan_box], [answer_box], js=run_in_browser_js()
    ).then(mode.score, [request, answer_box], [status, table, summary], api_visibility="private")


def browser_mode(
    engine: Engine,
    votes: VoteStore,
    fail: Callable[[BaseException], str],
    folder: Path | None = None,
) -> BrowserMode:
    mode = BrowserMode(engine, votes, Path(folder) if folder else ort_dir(), fail)
    mode.serve_files()
    return mode
