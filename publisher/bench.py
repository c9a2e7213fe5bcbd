"""``bench``: load time, synthesis time, real-time factor, peak memory and size per model.

Every model runs in its own child process (so peak memory is its own and a crash is
contained); runs are interleaved round-robin with a rotating start, because on a noisy
2-core machine back-to-back blocks would measure the machine's mood, not the model.
Timing is taken inside the child around the session run, excluding the pipe.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher import first_audio, profile
from publisher.manifest import read_build, read_manifest, write_manifest_file
from publisher.model import sources as checkpoint_sources
from publisher.progress import progress
from publisher.runtime.constants import SAMPLE_RATE
from publisher.runtime.corpus import load_corpus
from publisher.runtime.errors import InputError, PublisherError, RunError
from publisher.runtime.synth import style_row
from publisher.verify.listen import listen as hear
from publisher.verify.measure import verification_items
from publisher.verify.worker import ModelWorker

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from publisher.verify.measure import Item


@dataclass
class Target:
    label: str
    target: str  # an .onnx path, or "torch:<checkpoint spec>"
    size_bytes: int | None = None
    fidelity: float | None = None  # worst spectral correlation from the variant's verify
    folder: Path | None = None  # built variant folder whose manifest gets the results
    wer: float | None = None  # speech set word error rate (verify's, or measured for a file)
    dnsmos: float | None = None  # speech set mean overall DNSMOS


@dataclass
class TargetResult:
    label: str
    size_mib: float | None
    load_seconds: float
    peak_rss_mib: float
    fidelity: float | None
    per_item: dict[str, dict[str, float]] = field(default_factory=dict)
    total_seconds: float = 0.0  # sum over items of the median synthesis time
    audio_seconds: float = 0.0
    rtf: float = 0.0  # total_seconds / audio_seconds (below 1 is faster than real time)
    ratio_to_baseline: float | None = None  # baseline time / this time (above 1 is faster)
    error: str = ""
    wer: float | None = None
    dnsmos: float | None = None


def targets_from_builds(folders: list[Path]) -> list[Target]:
    targets = []
    for folder in folders:
        m = read_build(folder)
        model = folder / m.model  # read_build checked it is the file that was built
        fid = [f["spectral_correlation"] for f in m.verification.fidelity]
        speech = m.verification.speech or {}
        heard = speech.get("ran", False)
        targets.append(
            Target(
                m.recipe,
                str(model),
                model.stat().st_size,
                min(fid) if fid else None,
                folder,
                speech["variant_wer"] if heard else None,
                speech["variant_dnsmos"]["overall"] if heard else None,
            )
        )
    return targets


def distinct_labels(targets: list[Target]) -> list[Target]:
    """Targets whose label another one shares (two builds of one recipe, say a new and an
    old ``cpu-int8``) are told apart by their folder's parent, else by position: results
    are keyed by label, so a shared one would report one file's times twice."""
    shared = {k for k, n in Counter(t.label for t in targets).items() if n > 1}
    out, seen = [], set()
    for i, t in enumerate(targets):
        label = t.label
        if label in shared:
            where = t.folder.parent.name if t.folder else Path(t.target).parent.name
            label = f"{label} ({where})" if where else label
        if label in seen:
            label = f"{label} #{i + 1}"
        seen.add(label)
        out.append(replace(t, label=label))
    return out


def external_targets(files: list[Path], ckpt, *, listen: bool) -> list[Target]:
    """ONNX files built elsewhere (kokoro-onnx's int8, an older release); with ``listen``
    their WER and DNSMOS are measured on the speech set against upstream torch."""
    for path in files:  # every file checked before minutes of listening
        if not path.is_file():
            raise InputError(f"{path}: no such file; give the path of an .onnx model")
    targets = []
    for path in files:
        t = Target(path.name, str(path), path.stat().st_size)
        if listen:
            speech = hear(ckpt, str(path))
            if speech["ran"]:
                t.wer, t.dnsmos = speech["variant_wer"], speech["variant_dnsmos"]["overall"]
        targets.append(t)
    return targets


def torch_target(folders: list[Path]) -> Target:
    source = read_manifest(folders[0]).checkpoint.source
    return Target("torch (cpu)", f"torch:{source}")


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def run_bench(
    targets: list[Target],
    items: list[Item],
    style_of,
    *,
    threads: int = 0,
    warmup: int = 1,
    repeats: int = 3,
    baseline: str | None = None,
) -> list[TargetResult]:
    """Measure every target on every item; ``style_of(item)`` gives its style row."""

    if not targets:
        raise InputError("nothing to benchmark: give --recipe NAME or built folders")
    workers, results = {}, {}
    try:
        for t in targets:
            log.info("loading %s ...", t.label)
            try:
                workers[t.label] = ModelWorker(t.target, threads=threads, label=t.label)
            except PublisherError as err:
                results[t.label] = TargetResult(
                    t.label, None, 0.0, 0.0, t.fidelity, error=str(err), wer=t.wer, dnsmos=t.dnsmos
                )
                continue
            results[t.label] = TargetResult(
                t.label,
                t.size_bytes / 2**20 if t.size_bytes else None,
                workers[t.label].load_seconds,
                0.0,
                t.fidelity,
                wer=t.wer,
                dnsmos=t.dnsmos,
            )
        if not workers:
            failed = "; ".join(f"{r.label}: {r.error}" for r in results.values())
            raise RunError(f"no model could be loaded, nothing to time ({failed})")
        times: dict[str, dict[str, list[float]]] = {label: {} for label in workers}
        audio: dict[str, float] = {}
        order = list(workers)
        for rep in progress(range(warmup + repeats), "bench"):
            phase = "warm-up" if rep < warmup else f"repeat {rep - warmup + 1}/{repeats}"
            log.info("%s: %d inputs x %d models", phase, len(items), len(order))
            for k, item in enumerate(items):
                start = (rep + k) % len(order)
                for label in order[start:] + order[:start]:
                    if label not in workers:
                        continue
                    try:
                        out, seconds = workers[label].run(
                            list(item.ids), style_of(item), item.speed
                        )
                    except PublisherError as err:  # a crash takes out this target only
                        results[label].error = str(err)
                        workers.pop(label).close()
                        continue
                    audio[item.id] = out.waveform.size / SAMPLE_RATE
                    if rep >= warmup:
                        times[label].setdefault(item.id, []).append(seconds)
        for label, worker in workers.items():
            r = results[label]
            r.peak_rss_mib = worker.peak_rss_mib()
            for item in items:
                runs = times[label].get(item.id, [])
                if not runs:
                    continue
                med = statistics.median(runs)
                r.per_item[item.id] = {
                    "median": med,
                    "p90": _p90(runs),
                    "runs": len(runs),
                    "audio_seconds": audio[item.id],
                    "rtf": med / audio[item.id],
                }
                r.total_seconds += med
                r.audio_seconds += audio[item.id]
            r.rtf = r.total_seconds / r.audio_seconds if r.audio_seconds else 0.0
    finally:
        for worker in workers.values():
            worker.close()
    ordered = [results[t.label] for t in targets]
    base = next((r for r in ordered if r.label == baseline and r.total_seconds), None)
    base = base or next((r for r in ordered if r.total_seconds), None)
    for r in ordered:
        if base and r.total_seconds:
            r.ratio_to_baseline = base.total_seconds / r.total_seconds
    return ordered


def markdown_table(results: list[TargetResult], baseline: str) -> str:
    lines = [
        f"| model | size MiB | load s | median s (sum over inputs) | RTF | peak RSS MiB | "
        f"speed vs {baseline} | fidelity (worst corr) | WER | DNSMOS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.error and not r.total_seconds:
            lines.append(f"| {r.label} | | | failed: {r.error} | | | | | | |")
            continue
        wer = f"{r.wer:.3f}" if r.wer is not None else "-"
        mos = f"{r.dnsmos:.3f}" if r.dnsmos is not None else "-"
        size = f"{r.size_mib:.2f}" if r.size_mib is not None else "-"
        fid = f"{r.fidelity:.5f}" if r.fidelity is not None else "-"
        ratio = f"{r.ratio_to_baseline:.2f}x" if r.ratio_to_baseline else "-"
        lines.append(
            f"| {r.label} | {size} | {r.load_seconds:.2f} | {r.total_seconds:.3f} | "
            f"{r.rtf:.3f} | {r.peak_rss_mib:.0f} | {ratio} | {fid} | {wer} | {mos} |"
        )
    return "\n".join(lines) + "\n"


def chart(results: list[TargetResult], path: Path) -> None:
    """Size against real-time factor, colored by fidelity: one picture of the trade-off."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    points = [r for r in results if r.total_seconds]
    sized = [r for r in points if r.size_mib is not None]
    colors = [r.fidelity if r.fidelity is not None else 1.0 for r in sized]
    sc = ax.scatter(
        [r.size_mib for r in sized],
        [r.rtf for r in sized],
        c=colors,
        cmap="viridis",
        vmin=min(colors + [0.99]),
        vmax=1.0,
        s=80,
    )
    for r in sized:
        ax.annotate(r.label, (r.size_mib, r.rtf), textcoords="offset points", xytext=(6, 4))
    for r in points:
        if r.size_mib is None:
            ax.axhline(r.rtf, linestyle="--", color="gray")
            ax.annotate(r.label, (0, r.rtf), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("file size (MiB)")
    ax.set_ylabel("real-time factor (lower is faster)")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 1.15 * max((r.rtf for r in points), default=1.0))
    fig.colorbar(sc, ax=ax, label="fidelity: worst spectral correlation")
    ax.set_title("Kokoro ONNX variants: size, speed, fidelity")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_outputs(
    results: list[TargetResult], targets: list[Target], report_dir: Path, settings: dict[str, Any]
) -> dict[str, Path]:
    """bench.json, bench.md, bench.png in report_dir; each variant's manifest gets its row."""

    report_dir.mkdir(parents=True, exist_ok=True)
    data = {"settings": settings, "results": [asdict(r) for r in results]}
    paths = {
        "json": report_dir / "bench.json",
        "md": report_dir / "bench.md",
        "png": report_dir / "bench.png",
    }
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")
    paths["md"].write_text(markdown_table(results, settings["baseline"]))
    chart(results, paths["png"])
    for t, r in zip(targets, results, strict=True):
        if t.folder is None:
            continue
        manifest = read_manifest(t.folder)
        manifest.bench = {"settings": settings, "result": asdict(r)}
        write_manifest_file(t.folder, manifest)
    return paths


@dataclass
class BenchRun:
    """One ``benchmark`` call: the results, the label speeds are compared with, and the
    report files (json, md, png) it wrote."""

    results: list[TargetResult]
    baseline: str
    paths: dict[str, Path]


def benchmark(
    folders: list[Path],
    *,
    with_torch: bool = False,
    threads: int = 0,
    warmup: int = 1,
    repeats: int = 3,
    max_phonemes: int | None = None,
    report_dir: Path | None = None,
    external: list[Path] | None = None,
    listen: bool = False,
    profile: bool = False,
    first_audio: bool = False,
) -> BenchRun:
    """The ``publisher bench`` job over built variant folders (plus torch if asked, plus
    ``external`` ONNX files, heard on the speech set when ``listen``)."""

    if not folders:
        raise InputError("nothing to benchmark: give --recipe NAME or built folders")
    sources = {read_manifest(f).checkpoint.sha256 for f in folders}
    if len(sources) > 1:
        raise InputError("these builds come from different checkpoints; bench one at a time")
    ckpt = checkpoint_sources.open_checkpoint(read_manifest(folders[0]).checkpoint.source)
    items = verification_items(ckpt, max_phonemes=max_phonemes)
    targets = targets_from_builds(folders)
    targets += external_targets(list(external or []), ckpt, listen=listen)
    targets += [torch_target(folders)] if with_torch else []
    targets = distinct_labels(targets)
    labels = [t.label for t in targets]
    baseline = "fp32" if "fp32" in labels else labels[0]
    results = run_bench(
        targets,
        items,
        lambda i: style_row(ckpt.voices[i.voice], len(i.ids)),
        threads=threads,
        warmup=warmup,
        repeats=repeats,
        baseline=baseline,
    )
    settings = {
        "threads": threads,
        "warmup": warmup,
        "repeats": repeats,
        "baseline": baseline,
        "items": [i.id for i in items],
        "checkpoint": ckpt.source,
    }
    report = report_dir or folders[0].parent / "bench"
    paths = write_outputs(results, targets, report, settings)
    ran = [t for t, r in zip(targets, results, strict=True) if r.total_seconds]
    if profile:  # the targets that loaded and ran in the timed run
        paths.update(profile_outputs(ran, items, ckpt, threads, report))
    if first_audio:
        paths.update(first_audio_outputs(ran, ckpt, threads, repeats, report))
    return BenchRun(results, baseline, paths)


def first_audio_outputs(targets: list[Target], ckpt, threads: int, repeats: int, report: Path):
    """``--first-audio``: the corpus's 10-word sentence streamed through every ONNX target
    (first_audio.json/.md/.png, keys prefixed ``first_audio_``)."""

    corpus = load_corpus()
    sentence = next(c for c in [*corpus.speech, *corpus.eval] if c.id == first_audio.SENTENCE_ID)
    voice = sentence.voice if sentence.voice in ckpt.voices else ckpt.sample_voice
    ids = sentence.ids(ckpt.config["vocab"])
    results = first_audio.run_first_audio(
        targets,
        ids,
        ckpt.voices[voice],
        sentence.speed,
        threads=threads,
        repeats=max(repeats, 3),
    )
    settings = {
        "threads": threads,
        "repeats": max(repeats, 3),
        "sentence": sentence.text,
        "voice": voice,
        "phonemes": len(ids),
        "checkpoint": ckpt.source,
    }
    written = first_audio.write_outputs(results, targets, report, settings)
    return {f"first_audio_{k}": v for k, v in written.items()}


def profile_outputs(targets: list[Target], items, ckpt, threads: int, report: Path) -> dict:
    """``--profile``: every ONNX target through onnxruntime's profiler on the same inputs;
    profile.json/.md/.png beside the bench report (keys prefixed ``profile_``)."""

    inputs = [(list(i.ids), style_row(ckpt.voices[i.voice], len(i.ids)), i.speed) for i in items]
    files = [(t.label, t.target) for t in targets if not t.target.startswith("torch:")]
    peak, profiles = profile.profile_targets(files, inputs, threads)
    written = profile.write_outputs(peak, profiles, report)
    return {f"profile_{k}": v for k, v in written.items()}
