"""The ``publisher`` command line: thin click wrappers over the library functions.

Heavy modules (torch, onnx, onnxruntime) are imported inside the commands that need them,
so ``publisher --help`` stays instant.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import click

from publisher.commands.options import checkpoint_option, speech_gates_option
from publisher.errors import PublisherError


class _Group(click.Group):
    """Every failure a user can cause ends as one line on stderr and exit status 1:
    a PublisherError, a usage mistake, an OSError nobody anticipated (full disk,
    read-only folder). Ctrl-C exits 130 and SIGTERM 143, both after cleanup ran."""

    def main(self, args=None, prog_name=None, complete_var=None, **extra):
        extra.pop("standalone_mode", None)
        previous = _on_sigterm()
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as err:
            hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx else ""
            click.echo(f"error: {err.format_message()}{hint}", err=True)
            code = 1
        except click.ClickException as err:
            click.echo(f"error: {err.format_message()}", err=True)
            code = 1
        except click.Abort:
            click.echo("interrupted", err=True)
            code = 130
        finally:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, previous)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context):
        from publisher.workspace import os_error_line

        try:
            return super().invoke(ctx)
        except PublisherError as err:  # one line, whatever a quoted name holds
            click.echo(f"error: {_one_line(err)}", err=True)
            ctx.exit(err.exit_code)
        except BrokenPipeError:  # `publisher ... | head`: the reader left; nothing to say
            ctx.exit(1)
        except OSError as err:
            click.echo(f"error: {os_error_line(err)}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except _Terminated:
            click.echo("terminated", err=True)
            ctx.exit(143)


def _one_line(err: BaseException) -> str:
    """The message on one line, whatever a quoted name holds (newlines shown escaped)."""
    return str(err).replace("\r", "\\r").replace("\n", "\\n")


class _Terminated(BaseException):
    """Raised by SIGTERM so that every ``finally`` and ``except BaseException`` cleanup
    runs (the default action kills the process where it stands)."""


def _on_sigterm():
    def handler(signum, frame):
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding application): leave it alone
        return signal.getsignal(signal.SIGTERM)


def _info(line: str) -> None:
    click.echo(line, err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kokoro-onnx-publisher")
def main() -> None:
    """Build, verify and publish Kokoro-82M ONNX variants from YAML recipes."""
    # torch's exporter logs C++ warnings about prim::PackPadded shape inference on every
    # export; they are about its own inference, not ours. Must be set before torch loads.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")


@main.command("list")
def list_cmd() -> None:
    """Show every recipe with its one-line description."""
    from publisher.recipe import list_recipes

    recipes = list_recipes()
    width = max((len(r.name) for r in recipes), default=0)
    for r in recipes:
        click.echo(f"{r.name:<{width}}  {r.output.path:<34}  {r.description}")


@main.command()
@click.argument("recipes", nargs=-1)
def validate(recipes: tuple[str, ...]) -> None:
    """Check recipes (names or paths; all of recipes/ when none given)."""
    from publisher.errors import RecipeError
    from publisher.recipe import load_recipe, recipe_files

    if not recipes:  # every file, each reported, the broken ones included
        recipes = tuple(str(path) for path in recipe_files())
    failed = 0
    for name in recipes:
        try:
            r = load_recipe(name)
            click.echo(f"ok  {r.name}")
        except RecipeError as err:
            failed += 1
            click.echo(f"error: {_one_line(err)}", err=True)
    if failed:
        raise click.exceptions.Exit(1)


@main.command()
@click.option(
    "--recipe",
    "recipe_name",
    required=True,
    metavar="NAME|PATH",
    help="Recipe name in recipes/ or a path to a recipe YAML file.",
)
@checkpoint_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Folder that receives NAME/.",
)
@click.option("--dry-run", is_flag=True, help="Print the resolved plan and stop.")
@speech_gates_option
def build(
    recipe_name: str, checkpoint: str | None, out_dir: Path, dry_run: bool, speech: bool
) -> None:
    """Export, transform and verify one variant into OUT/NAME/."""
    from publisher.recipe import load_recipe

    recipe = load_recipe(recipe_name)
    if dry_run:
        from publisher.passes import plan

        click.echo(
            json.dumps(
                {
                    "recipe": recipe.name,
                    "checkpoint": checkpoint or recipe.checkpoint,
                    "passes": plan(recipe),
                    "output": str(out_dir / recipe.name / recipe.output.path),
                    "resolved_recipe": recipe.model_dump(mode="json"),
                },
                indent=2,
            )
        )
        return
    from publisher.build import build as run_build

    result = run_build(recipe, checkpoint=checkpoint, out_dir=out_dir, echo=_info, speech=speech)
    size = result.model_path.stat().st_size / 2**20
    worst = max(p["max_abs_error"] for p in result.manifest["verification"]["parity"])
    click.echo(
        f"built {result.model_path} ({size:.2f} MiB); parity max abs error {worst:.3g}; "
        f"report {result.folder / 'verify.md'}"
    )


@main.command()
@click.option(
    "--recipe",
    "recipe_name",
    required=True,
    metavar="NAME|PATH",
    help="The recipe whose build (OUT/NAME/) to verify.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Folder that holds NAME/.",
)
@click.option(
    "--checkpoint",
    metavar="SRC",
    default=None,
    help="Checkpoint to compare with (default: the one the build recorded).",
)
@speech_gates_option
def verify(recipe_name: str, out_dir: Path, checkpoint: str | None, speech: bool) -> None:
    """Re-run parity, fidelity and gates on a built variant; update its manifest and report."""
    from publisher.build import verify_built
    from publisher.recipe import load_recipe

    recipe = load_recipe(recipe_name)
    verify_built(recipe, out_dir=out_dir, checkpoint=checkpoint, echo=_info, speech=speech)
    click.echo(
        f"verified {out_dir / recipe.name}: all gates pass; "
        f"report {out_dir / recipe.name / 'verify.md'}"
    )


@main.command()
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--recipe",
    "recipes",
    multiple=True,
    metavar="NAME",
    help="Benchmark OUT/NAME (repeatable); or pass built folders as arguments.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Folder holding built variants.",
)
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
def bench(
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
) -> None:
    """Time variants interleaved on the corpus: load, median/p90, RTF, memory, size."""
    from publisher.bench import benchmark, markdown_table

    chosen = [*folders, *(out_dir / name for name in recipes)]
    results, paths = benchmark(
        chosen,
        with_torch=with_torch,
        threads=threads,
        warmup=warmup,
        repeats=repeats,
        max_phonemes=max_phonemes,
        report_dir=report_dir,
        external=list(external),
        listen=listen,
        echo=_info,
    )
    baseline = json.loads(paths["json"].read_text())["settings"]["baseline"]
    click.echo(markdown_table(results, baseline))
    click.echo(f"wrote {paths['json']}, {paths['md']}, {paths['png']}")


def _register_commands() -> None:
    from publisher.commands.changed_cmd import changed_command
    from publisher.commands.convert_io_cmd import convert_io_command
    from publisher.commands.inspect_cmd import inspect_command
    from publisher.commands.publish_cmds import publish_command, stage_command, voices_command
    from publisher.commands.sensitivity_cmd import sensitivity_command
    from publisher.commands.space_cmd import space_command

    for command in (
        inspect_command,
        convert_io_command,
        voices_command,
        stage_command,
        publish_command,
        changed_command,
        space_command,
        sensitivity_command,
    ):
        main.add_command(command)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
