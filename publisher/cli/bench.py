"""``publisher bench``: time built variants (and files built elsewhere) interleaved on the
corpus (``publisher.bench``)."""

from __future__ import annotations

from pathlib import Path

import click

from publisher.bench import benchmark, markdown_table
from publisher.cli.options import out_option, recipes_option


@click.command("bench")
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@recipes_option("Benchmark OUT/NAME (repeatable); or pass built folders as arguments.")
@out_option("Folder holding built variants.")
@click.option(
    "--torch/--no-torch",
    "with_torch",
    default=False,
    help="Also time the PyTorch model on the CPU, in the same interleaved run.",
)
@click.option(
    "--threads",
    type=click.IntRange(0, 256),
    default=0,
    show_default=True,
    help="Intra-op threads per model (0: the runtime's default).",
)
@click.option("--warmup", type=click.IntRange(0, 20), default=1, show_default=True)
@click.option("--repeats", type=click.IntRange(1, 100), default=3, show_default=True)
@click.option(
    "--max-phonemes",
    type=click.IntRange(1, 508),
    default=None,
    help="Only corpus inputs up to this many phonemes (quicker runs).",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where bench.json/.md/.png go (default OUT/bench).",
)
@click.option(
    "--onnx",
    "external",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also bench an ONNX file built elsewhere, e.g. kokoro-onnx's int8 (repeatable).",
)
@click.option(
    "--listen/--no-listen",
    default=False,
    show_default=True,
    help="Measure WER and DNSMOS of the --onnx files on the speech set (real weights; minutes).",
)
@click.option(
    "--profile/--no-profile",
    default=False,
    show_default=True,
    help="Also profile each ONNX model in onnxruntime: time by op type and module, and the "
    "fraction of this CPU's measured GEMM peak (profile.md/.json/.png).",
)
@click.option(
    "--first-audio/--no-first-audio",
    default=False,
    show_default=True,
    help="Also time the first audio of one 10-word sentence streamed through each ONNX "
    "model (a bucket graph call by call), as a streaming server plays it "
    "(first_audio.md/.json/.png).",
)
def bench_command(
    folders: tuple[Path, ...],
    external: tuple[Path, ...],
    listen: bool,
    recipes: tuple[str, ...],
    out_dir: Path,
    with_torch: bool,
    threads: int,
    warmup: int,
    repeats: int,
    max_phonemes: int | None,
    report_dir: Path | None,
    profile: bool,
    first_audio: bool,
) -> None:
    """Time variants interleaved on the corpus: load, median/p90, RTF, memory, size."""

    chosen = [*folders, *(out_dir / name for name in recipes)]
    run = benchmark(
        chosen,
        with_torch=with_torch,
        threads=threads,
        warmup=warmup,
        repeats=repeats,
        max_phonemes=max_phonemes,
        report_dir=report_dir,
        external=list(external),
        listen=listen,
        profile=profile,
        first_audio=first_audio,
    )
    click.echo(markdown_table(run.results, run.baseline))
    click.echo(f"wrote {run.paths['json']}, {run.paths['md']}, {run.paths['png']}")
    if profile:
        click.echo(run.paths["profile_md"].read_text())
        written = ", ".join(str(run.paths[f"profile_{k}"]) for k in ("json", "md", "png"))
        click.echo(f"wrote {written}")
    if first_audio:
        click.echo(run.paths["first_audio_md"].read_text())
        written = ", ".join(str(run.paths[f"first_audio_{k}"]) for k in ("json", "md", "png"))
        click.echo(f"wrote {written}")
