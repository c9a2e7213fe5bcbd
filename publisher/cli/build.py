"""``publisher build`` and ``publisher verify``: one variant from a recipe, and its gates
re-run (``publisher.build``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from publisher.build import build_many, verify_built
from publisher.cli.conformance import run_and_report
from publisher.cli.options import (
    checkpoint_option,
    checkpoint_option_with,
    out_option,
    recipe_option,
    speech_gates_option,
)
from publisher.passes import plan
from publisher.recipe.loader import list_recipes, load_recipe
from publisher.runtime.errors import BuildError, InputError


@click.command("build")
@click.option(
    "--recipe",
    "recipe_names",
    multiple=True,
    metavar="NAME|PATH",
    help="Recipe name in recipes/ or a path to a recipe YAML file (repeatable).",
)
@click.option("--all", "all_", is_flag=True, help="Every recipe in recipes/.")
@checkpoint_option
@out_option("Folder that receives NAME/.")
@click.option("--dry-run", is_flag=True, help="Print the resolved plan and stop.")
@speech_gates_option
@click.option(
    "--floor-check/--no-floor-check",
    "floor",
    default=True,
    show_default=True,
    help="Load and run the file in the onnxruntime of target.min_onnxruntime (an isolated "
    "environment, created once from PyPI and cached).",
)
@click.option(
    "--conformance",
    is_flag=True,
    help="After the build, run the runtime matrix (as `publisher conformance`); a failing "
    "claimed cell exits 1 (the build stays, with the matrix in its manifest).",
)
def build_command(
    recipe_names: tuple[str, ...],
    all_: bool,
    checkpoint: str | None,
    out_dir: Path,
    dry_run: bool,
    speech: bool,
    floor: bool,
    conformance: bool,
) -> None:
    """Export, transform and verify variants into OUT/NAME/ (several recipes: one process,
    each checkpoint opened once; a failing recipe does not stop the others)."""
    recipes = _chosen(recipe_names, all_)
    if dry_run:
        for recipe in recipes:
            click.echo(json.dumps(_plan(recipe, checkpoint, out_dir), indent=2))
        return

    many = build_many(recipes, checkpoint, out_dir, speech=speech, floor=floor)
    for result in many.built:
        size = result.model_path.stat().st_size / 2**20
        worst = max(p["max_abs_error"] for p in result.manifest.verification.parity)
        click.echo(
            f"built {result.model_path} ({size:.2f} MiB); parity max abs error {worst:.3g}; "
            f"report {result.folder / 'verify.md'}"
        )
    for name, why in many.failed:
        click.echo(f"failed: {name}: {why}", err=True)
    if conformance and many.built:
        run_and_report([r.folder for r in many.built])
    if many.failed:
        names = ", ".join(name for name, _ in many.failed)
        raise BuildError(
            f"{len(many.failed)} of {len(recipes)} recipes failed ({names}); "
            f"{len(many.built)} built"
        )


def _chosen(recipe_names: tuple[str, ...], all_: bool) -> list:
    if recipe_names and all_:
        raise InputError("give --recipe NAME (repeatable) or --all, not both")
    if all_:
        return list_recipes()
    if not recipe_names:
        raise click.UsageError("Missing option '--recipe' (or --all).")
    return [load_recipe(name) for name in recipe_names]  # every recipe checked first


def _plan(recipe, checkpoint: str | None, out_dir: Path) -> dict:
    return {
        "recipe": recipe.name,
        "checkpoint": checkpoint or recipe.checkpoint,
        "passes": plan(recipe),
        "output": str(out_dir / recipe.name / recipe.output.path),
        "resolved_recipe": recipe.model_dump(mode="json"),
    }


@click.command("verify")
@recipe_option("The recipe whose build (OUT/NAME/) to verify.")
@out_option("Folder that holds NAME/.")
@checkpoint_option_with("Checkpoint to compare with (default: the one the build recorded).")
@speech_gates_option
def verify_command(recipe_name: str, out_dir: Path, checkpoint: str | None, speech: bool) -> None:
    """Re-run parity, fidelity and gates on a built variant; update its manifest and report."""

    recipe = load_recipe(recipe_name)
    verify_built(recipe, out_dir=out_dir, checkpoint=checkpoint, speech=speech)
    click.echo(
        f"verified {out_dir / recipe.name}: all gates pass; "
        f"report {out_dir / recipe.name / 'verify.md'}"
    )
