"""``publisher bench --first-audio``: how long a listener waits for the first sound.

A streaming server plays a bucket graph's audio call by call, so the first sound comes
after the first call (one bucket's worth of the sentence); a dynamic graph gives the whole
sentence in one call. Every model runs the same 10-word sentence (the first sentence of a
paragraph) in its own child process, interleaved round-robin with a rotating start as the
main bench is; the median of the repeats is reported.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.manifest import read_manifest, write_manifest_file
from publisher.progress import progress
from publisher.runtime.errors import InputError, PublisherError
from publisher.verify.worker import ModelWorker

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import numpy as np

    from publisher.bench import Target

SENTENCE_ID = "speech-13"  # corpus: "The source of the huge river is the clear spring."


@dataclass
class FirstAudio:
    label: str
    first_seconds: float = 0.0  # median seconds until the first chunk of audio
    first_audio_seconds: float = 0.0  # seconds of speech in that chunk
    total_seconds: float = 0.0  # median seconds until the sentence's last chunk
    audio_seconds: float = 0.0
    chunks: int = 0  # calls the sentence took
    runs: int = 0
    error: str = ""


def run_first_audio(
    targets: list[Target],
    ids: list[int],
    style: np.ndarray,
    speed: float = 1.0,
    *,
    threads: int = 0,
    warmup: int = 1,
    repeats: int = 5,
) -> list[FirstAudio]:
    """Time ``ids`` streamed through every ONNX target, interleaved."""

    onnx = [t for t in targets if not t.target.startswith("torch:")]
    if not onnx:
        raise InputError("first audio: no ONNX model to time (torch does not stream)")
    results = {t.label: FirstAudio(t.label) for t in onnx}
    workers: dict[str, ModelWorker] = {}
    runs: dict[str, list[tuple[float, float]]] = {t.label: [] for t in onnx}
    try:
        for t in onnx:
            try:
                workers[t.label] = ModelWorker(t.target, threads=threads, label=t.label)
            except PublisherError as err:
                results[t.label].error = str(err)
        order = list(workers)
        for rep in progress(range(warmup + repeats), "first audio"):
            phase = "warm-up" if rep < warmup else f"repeat {rep - warmup + 1}/{repeats}"
            log.info("first audio, %s: %d models", phase, len(order))
            start = rep % max(len(order), 1)
            for label in order[start:] + order[:start]:
                if label not in workers:
                    continue
                try:
                    timing = workers[label].stream(ids, style, speed)
                except PublisherError as err:  # a crash takes out this target only
                    results[label].error = str(err)
                    workers.pop(label).close()
                    continue
                r = results[label]
                r.first_audio_seconds, r.audio_seconds = (
                    timing.first_audio_seconds,
                    timing.audio_seconds,
                )
                r.chunks = timing.chunks
                if rep >= warmup:
                    runs[label].append((timing.first_seconds, timing.total_seconds))
    finally:
        for worker in workers.values():
            worker.close()
    for label, timed in runs.items():
        if timed:
            r = results[label]
            r.first_seconds = statistics.median(f for f, _ in timed)
            r.total_seconds = statistics.median(t for _, t in timed)
            r.runs = len(timed)
    return [results[t.label] for t in onnx]


def markdown_table(results: list[FirstAudio], sentence: str) -> str:
    lines = [
        f'Time to first audio, one sentence ("{sentence}"), median of the repeats:',
        "",
        "| model | first audio ms | speech in it s | calls | whole sentence ms | speech s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if not r.runs:
            lines.append(f"| {r.label} | failed: {r.error or 'not run'} | | | | |")
            continue
        lines.append(
            f"| {r.label} | {r.first_seconds * 1000:.0f} | {r.first_audio_seconds:.2f} | "
            f"{r.chunks} | {r.total_seconds * 1000:.0f} | {r.audio_seconds:.2f} |"
        )
    return "\n".join(lines) + "\n"


def chart(results: list[FirstAudio], path: Path) -> None:
    """One bar per model: the wait for the first sound, and the whole sentence behind it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in results if r.runs]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(timed) + 1.5))
    labels = [r.label for r in timed]
    ax.barh(
        labels, [r.total_seconds * 1000 for r in timed], color="#c7d7ee", label="whole sentence"
    )
    ax.barh(labels, [r.first_seconds * 1000 for r in timed], color="#2f6db3", label="first audio")
    for k, r in enumerate(timed):
        ax.annotate(
            f"{r.first_seconds * 1000:.0f} ms",
            (r.first_seconds * 1000, k),
            xytext=(4, -4),
            textcoords="offset points",
        )
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds (median)")
    ax.set_title("Time to first audio: one 10-word sentence")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_outputs(
    results: list[FirstAudio],
    targets: list[Target],
    report_dir: Path,
    settings: dict[str, Any],
) -> dict[str, Path]:
    """first_audio.json/.md/.png in report_dir; each built variant's manifest its row."""

    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: report_dir / f"first_audio.{k}" for k in ("json", "md", "png")}
    data = {"settings": settings, "results": [asdict(r) for r in results]}
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")
    paths["md"].write_text(markdown_table(results, settings["sentence"]))
    chart(results, paths["png"])
    by_label = {r.label: r for r in results}
    for t in targets:
        r = by_label.get(t.label)
        if t.folder is None or r is None or not r.runs:
            continue
        manifest = read_manifest(t.folder)
        manifest.first_audio = {"settings": settings, "result": asdict(r)}
        write_manifest_file(t.folder, manifest)
    return paths
