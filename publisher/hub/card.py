"""The model card: README.md rendered from a repo manifest alone (templates/README.md.j2
for the body, huggingface_hub's ``ModelCardData`` for the front matter and its
``model-index``), so ``stage`` and ``publish --card-only`` render the same card from the
same data, and every claim in it is a measured figure from the manifest.
"""

from __future__ import annotations

import re
from typing import Any

from publisher import locations
from publisher.hub.browser_runs import browser_table
from publisher.runtime.clients import kokoro_js_dtype
from publisher.runtime.errors import PublishError

SIZE_SPEED_FIGURE = "figures/size_speed.png"
GATES_NOTE = "gates per variant are listed in manifest.json"


def md(text: Any) -> str:
    """Escape text from recipes for Markdown (tables included) and HTML."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_{}\[\]|#!])", r"\\\1", s)


def render_card(manifest: dict[str, Any], repo_id: str) -> str:
    """README.md for a repo manifest (see ``stage``): front matter, then the body."""
    from huggingface_hub import ModelCard

    body = _render_body(card_context(manifest, repo_id))
    text = f"---\n{card_data(manifest, repo_id).to_yaml()}\n---\n{body}"
    ModelCard(text)  # parses the front matter back, as the Hub will
    return text


def _render_body(context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(locations.shipped_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md
    try:
        return env.get_template("README.md.j2").render(**context)
    except jinja2.UndefinedError as exc:
        raise PublishError(f"templates/README.md.j2: {exc}") from None


def card_context(manifest: dict[str, Any], repo_id: str) -> dict[str, Any]:
    """What the template sees, all of it from the manifest."""
    variants = manifest["variants"]
    if not variants:
        raise PublishError("the repo manifest lists no current variant: nothing to describe")
    hosts = {_host_line(v["host"]) for v in variants}
    return {
        "title": f"Kokoro-82M ONNX ({len(variants)} variants)",
        "synthetic": manifest["synthetic"],
        "recovered": manifest["recovered"],
        "recovered_note": manifest["recovered_note"],
        "checkpoint": manifest["checkpoint"],
        "variants": [_row(v) for v in variants],
        "stale": manifest.get("stale", []),
        "tensors": variants[0]["tensors"],
        "usage": usage(variants, manifest["voices"]),
        "choices": choices(variants),
        "works_in": works_in(variants),
        "first_audio": first_audio(variants),
        "browser": browser_table(manifest),
        "figures": _figures(manifest),
        "voices": manifest["voices"],
        "languages": ["en"],
        "repo_id": repo_id,
        "versions": manifest["versions"],
        "hosts": sorted(hosts),
        "gates_note": GATES_NOTE,
        "bench_note": _bench_note(variants),
    }


def _host_line(host: dict[str, Any]) -> str:
    return f"{host['platform']}, {host['processor']}, {host['cpu_count']} CPUs"


def _row(v: dict[str, Any]) -> dict[str, Any]:
    return {**v, **display_columns(v)}


def display_columns(v: dict[str, Any]) -> dict[str, str]:
    """The card table's formatted columns of a variant entry (also kept in the manifest,
    where the Space shows them)."""
    bench = v.get("bench") or {}
    speech = v.get("speech") or {}
    return {
        "spectral_correlation": _fmt(v.get("worst_spectral_correlation"), ".5f"),
        "log_mel_distance": _fmt(v.get("worst_log_mel_distance"), ".4f"),
        "latency": (
            f"{bench['total_seconds']:.2f} / {bench['rtf']:.3f}"
            if bench.get("total_seconds")
            else "not measured"
        ),
        "wer": _wer(speech),
        "dnsmos": (
            f"{speech['dnsmos']:.2f} ({speech['reference_dnsmos']:.2f})"
            if speech.get("ran")
            else "-"
        ),
        "speaker_similarity": _fmt(speech.get("speaker_similarity"), ".3f"),
        "speed": (f"{bench['ratio_to_baseline']:.2f}x" if bench.get("ratio_to_baseline") else "-"),
        "first_audio_ms": _first_audio_ms(v.get("first_audio")),
    }


def _wer(speech: dict[str, Any]) -> str:
    """The variant's WER (upstream's); a bucket that spoke sentences in pieces also shows
    upstream speaking the same pieces, what its gate compared it with."""
    if not speech.get("ran"):
        return "-"
    pieces = speech.get("same_pieces_wer")
    split = f"; in its pieces {pieces:.3f}" if pieces is not None else ""
    return f"{speech['wer']:.3f} ({speech['reference_wer']:.3f}{split})"


def _first_audio_ms(first: dict[str, Any] | None) -> str:
    return f"{first['first_seconds'] * 1000:.0f}" if first and first.get("runs") else "-"


def first_audio(variants: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The card's time-to-first-audio table: the variants timed by ``bench
    --first-audio``, quickest first; None when none was."""
    timed = [v for v in variants if (v.get("first_audio") or {}).get("runs")]
    if not timed:
        return None
    timed.sort(key=lambda v: v["first_audio"]["first_seconds"])
    first = timed[0]["first_audio"]
    return {
        "sentence": first.get("sentence") or "",
        "threads": first.get("threads") or "default",
        "rows": [
            {
                "path": v["path"],
                "ms": _first_audio_ms(v["first_audio"]),
                "speech": f"{v['first_audio']['first_audio_seconds']:.2f}",
                "calls": v["first_audio"]["chunks"],
                "whole_ms": f"{v['first_audio']['total_seconds'] * 1000:.0f}",
            }
            for v in timed
        ],
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _bench_note(variants: list[dict[str, Any]]) -> str:
    for v in variants:
        settings = v.get("bench_settings")
        if settings:
            return (
                f"{settings['threads'] or 'default'} threads, {settings['repeats']} repeats "
                f"after {settings['warmup']} warm-up, interleaved"
            )
    return "no benchmark recorded for these builds"


def _figures(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "size_speed": (manifest.get("figures") or {}).get("size_speed"),
        "spectrograms": [
            {"recipe": v["recipe"], "path": v["spectrogram"]}
            for v in manifest["variants"]
            if v.get("spectrogram")
        ],
    }


FAST_CPU_RECIPE = "cpu-int8"  # the family's speed file: its own usage snippet


def usage(variants: list[dict[str, Any]], voices: list[str]) -> dict[str, Any]:
    """Which files each runtime's usage snippet names."""
    dynamic = [v for v in variants if v["shape"] == "dynamic"]
    community = [v for v in dynamic if _community(v)]
    js = [{"dtype": _js_dtype(v), "file": v["path"]} for v in community if _kokoro_js(v)]
    first = (community or dynamic or variants)[0]
    return {
        "onnxruntime_file": first["path"],
        "onnxruntime_shape": first["shape"],
        "names": first["io"],
        "voice": "af_heart" if "af_heart" in voices else voices[0],
        "kokoro_onnx": [v["path"] for v in dynamic],
        "kokoro_js": js,
        "fastkokoro": [v["path"] for v in variants if v["shape"] == "bucket"],
        "sherpa_onnx": [
            {"recipe": v["recipe"], "folder": v["sherpa_onnx"]}
            for v in variants
            if v.get("sherpa_onnx")
        ],
        "sherpa_sid": sorted(voices).index("af_heart" if "af_heart" in voices else voices[0]),
        "fast_cpu": next(
            (
                {"file": v["path"], "speed": display_columns(v)["speed"]}
                for v in dynamic
                if v["recipe"] == FAST_CPU_RECIPE
            ),
            None,
        ),
    }


def _community(v: dict[str, Any]) -> bool:
    return v["io"]["input_ids"] == "input_ids" and v["io"]["waveform"] == "waveform"


def _kokoro_js(v: dict[str, Any]) -> bool:
    return _js_dtype(v) is not None


def _js_dtype(v: dict[str, Any]) -> str | None:
    return kokoro_js_dtype(v["shape"], v["io"], v["path"])


def works_in(variants: list[dict[str, Any]]) -> dict[str, Any]:
    """The runtime matrix: one column per runtime any variant was run in (the onnxruntime
    releases oldest first, then the others by name), one row per variant; "not run" where
    its build has no matrix."""
    names = sorted({n for v in variants for n in (v.get("conformance") or {})}, key=_column)
    rows = [
        {
            "path": v["path"],
            "cells": [_shown_cell((v.get("conformance") or {}).get(n) or {}) for n in names],
        }
        for v in variants
    ]
    heard = [
        cell["heard"]
        for v in variants
        for cell in (v.get("conformance") or {}).values()
        if cell and cell.get("heard")
    ]
    sentences = max((h["sentences"] for h in heard), default=0)
    return {"runtimes": names, "rows": rows if names else [], "heard_sentences": sentences}


def _shown_cell(cell: dict[str, Any]) -> str:
    """A matrix cell as the card shows it: its status, and for a text runtime heard
    through its own front end, its WER beside ours (the same sentences, our phonemes)."""
    shown = {"ok": "ok", "fails": "fails", "known failure": "known failure", "not claimed": "-"}
    text = shown.get(cell.get("status"), "not run")
    heard = cell.get("heard")
    if heard:
        text += f", WER {heard['wer']:.2f} (ours {heard['ours_wer']:.2f})"
    return text


def _column(name: str) -> tuple:
    if name.startswith("onnxruntime "):
        return (0, tuple(int(p) for p in name.split()[1].split(".") if p.isdigit()))
    return (1, name)


def _fails_in(v: dict[str, Any], runtime_prefix: str) -> bool:
    """Whether the variant's matrix has a failing cell for this runtime."""
    cells = v.get("conformance") or {}
    return any(
        name.startswith(runtime_prefix) and cell.get("status") in ("fails", "known failure")
        for name, cell in cells.items()
    )


def choices(variants: list[dict[str, Any]]) -> list[dict[str, str]]:
    """ "Which file should I use?": one row per need, each chosen from measured figures in
    the manifest (never a hand-written claim); a need no file meets says so."""
    rows = []

    def add(need: str, pool: list[dict[str, Any]], key, why, missing: str) -> None:
        measured = [v for v in pool if key(v) is not None]
        if not measured:
            rows.append({"need": need, "file": "-", "why": missing})
            return
        best = min(measured, key=key)
        text = why(best)
        if len(measured) < len(pool):  # say what the choice was made among
            text += f" (measured for {len(measured)} of {len(pool)} files)"
        rows.append({"need": need, "file": f"`{best['path']}`", "why": text})

    def size(v):
        return v["bytes"]

    def rtf(v):
        return (v.get("bench") or {}).get("rtf")

    def wer(v):
        s = v.get("speech") or {}
        return (s["wer"], -s["dnsmos"]) if s.get("ran") else None

    def drift(v):
        c = v.get("worst_spectral_correlation")
        return None if c is None else -c

    def mib(v):
        return f"{v['bytes'] / 2**20:.2f} MiB"

    dynamic = [v for v in variants if v["shape"] == "dynamic"]
    add("the smallest file", variants, size, mib, "no file")
    add(
        "the fastest on CPU",
        variants,
        rtf,
        lambda v: f"RTF {rtf(v):.3f} (median, {_host_line(v['host'])})",
        "no benchmark recorded",
    )
    add(
        "the closest to upstream Kokoro",
        variants,
        drift,
        lambda v: f"worst spectral correlation {v['worst_spectral_correlation']:.5f}",
        "no fidelity recorded",
    )
    add(
        "the fewest recognition errors",
        variants,
        wer,
        lambda v: f"WER {v['speech']['wer']:.3f}, DNSMOS {v['speech']['dnsmos']:.2f}",
        "speech not measured (synthetic weights do not speak)",
    )
    add(
        "the browser (kokoro-js / transformers.js)",
        [
            v
            for v in variants
            if _kokoro_js(v)
            and not _fails_in(v, "kokoro-js")
            and not _fails_in(v, "onnxruntime-web")
        ],
        size,
        lambda v: f"smallest file kokoro-js loads (dtype `{_js_dtype(v)}`, {mib(v)})",
        "no file under onnx/ with kokoro-js names",
    )
    add(
        "kokoro-onnx (Python)",
        [v for v in dynamic if not _fails_in(v, "kokoro-onnx")],
        size,
        lambda v: f"smallest dynamic-shape file ({mib(v)})",
        "no dynamic-shape file",
    )
    add(
        "streaming servers (fastkokoro)",
        [v for v in variants if v["shape"] == "bucket" and not _fails_in(v, "fastkokoro")],
        size,
        lambda v: f"fixed token bucket, smallest ({mib(v)})",
        "no fixed-bucket file in this repo",
    )
    return rows


def card_data(manifest: dict[str, Any], repo_id: str):
    """Front matter: license, base model, tags, and ``model-index`` results per variant
    (``config`` names the file) for fidelity, WER and DNSMOS where measured, size, RTF."""
    from huggingface_hub import EvalResult, ModelCardData

    tags = ["onnx", "kokoro", "text-to-speech", "style_text_to_speech_2"]
    tags += ["synthetic-weights"] if manifest["synthetic"] else []
    tags += ["recovered-weights"] if manifest["recovered"] else []
    results = []
    for v in manifest["variants"]:
        for dataset, metric, value in _metrics(v):
            results.append(
                EvalResult(
                    task_type="text-to-speech",
                    dataset_type=dataset[0],
                    dataset_name=dataset[1],
                    metric_type=metric[0],
                    metric_name=f"{metric[1]} ({v['path']})",
                    metric_config=v["path"],
                    metric_value=value,
                )
            )
    return ModelCardData(
        license="apache-2.0",
        base_model="hexgrad/Kokoro-82M",
        pipeline_tag="text-to-speech",
        library_name="onnx",
        language=["en"],
        tags=tags,
        model_name=repo_id,
        eval_results=results or None,
    )


_VERIFY = ("publisher-verification", "publisher verification inputs vs PyTorch")
_HARVARD = ("harvard-sentences", "Harvard sentences (24, six voices)")


def _metrics(v: dict[str, Any]) -> list[tuple[tuple[str, str], tuple[str, str], float]]:
    out = [(_VERIFY, ("size_mib", "size MiB"), round(v["bytes"] / 2**20, 2))]
    if v.get("worst_spectral_correlation") is not None:
        out.append(
            (
                _VERIFY,
                ("spectral_correlation", "worst spectral correlation"),
                _r(v, "worst_spectral_correlation"),
            )
        )
    speech = v.get("speech") or {}
    if speech.get("ran"):
        out.append((_HARVARD, ("wer", "WER"), round(speech["wer"], 4)))
        out.append((_HARVARD, ("dnsmos", "DNSMOS overall"), round(speech["dnsmos"], 3)))
    rtf = (v.get("bench") or {}).get("rtf")
    if rtf:
        out.append((_VERIFY, ("rtf", "CPU real-time factor"), round(rtf, 4)))
    return out


def _r(v: dict[str, Any], key: str) -> float:
    return round(float(v[key]), 6)
