"""``voices``, ``stage`` and ``publish``: thin wrappers over publisher.repo_files/stage/publish."""

from __future__ import annotations

from pathlib import Path

import click

from publisher.cli.options import out_option, recipes_option
from publisher.hub.publish import check_repo_id, publish, publish_card
from publisher.hub.repo_files import write_voices
from publisher.hub.stage import stage
from publisher.model import sources
from publisher.recipe.loader import recipe_files
from publisher.runtime.errors import PublishError

_DIR = click.Path(file_okay=False, path_type=Path)


def built_folders(out_dir: Path, recipes: tuple[str, ...], all_: bool) -> list[Path]:
    """OUT/NAME for each --recipe, or every built folder in OUT with --all."""
    if recipes and all_:
        raise PublishError("give --recipe NAME (repeatable) or --all, not both")
    if all_:
        found = sorted(p.parent for p in Path(out_dir).glob("*/manifest.json"))
        if not found:
            raise PublishError(f"{out_dir}: no built variants; run publisher build first")
        return found
    if not recipes:
        raise PublishError("choose variants: --recipe NAME (repeatable) or --all")
    return [Path(out_dir) / name for name in recipes]


@click.command("voices")
@click.option("--checkpoint", metavar="SRC", default="hub:hexgrad/Kokoro-82M", show_default=True)
@out_option("Folder to write into.", required=True)
def voices_command(checkpoint: str, out_dir: Path) -> None:
    """Write voices.npz, voices.txt and voices/<name>.bin from a checkpoint's voices."""

    paths = write_voices(sources.open_checkpoint(checkpoint).voices, out_dir)
    click.echo(f"wrote {len(paths) - 2} voices to {out_dir} (voices.npz, voices.txt, voices/)")


_browser_report = click.option(
    "--browser-report",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="The Space's per-backend report of its listeners' in-browser runs (its 'Report for "
    "the model card (JSON)' button): the card's \"In listeners' browsers\" table (else the "
    "repo keeps the one it has).",
)

_select = [
    recipes_option("A built variant OUT/NAME (repeatable)."),
    click.option("--all", "all_", is_flag=True, help="Every built variant in OUT."),
    out_option("Folder holding the built variants."),
]


def _with_select(fn):
    for option in reversed(_select):
        fn = option(fn)
    return fn


@click.command("stage")
@_with_select
@click.option("--dest", type=_DIR, required=True, help="The repo folder to write.")
@click.option("--repo", "repo_id", default="ORG/NAME", help="Repo id shown in the card's usage.")
@_browser_report
def stage_command(recipes, all_, out_dir, dest, repo_id, browser_report) -> None:
    """Assemble a repo folder (card, config, tokenizer, voices, variants, manifest)."""

    folders = built_folders(out_dir, recipes, all_)
    staged = stage(folders, dest, repo_id=repo_id, browser_report=browser_report)
    click.echo(f"staged {len(staged.manifest['variants'])} variants in {staged.folder}")


@click.command("publish")
@click.option("--repo", "repo_id", required=True, metavar="ORG/NAME", help="Hub model repo.")
@_with_select
@click.option(
    "--card-only",
    is_flag=True,
    help="Re-render README.md from the repo's manifest.json with the current templates and "
    "upload it alone (no build needed).",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Delete the files of variants whose recipe no longer exists in recipes/ (same commit).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; reads the repo, writes nothing.")
@click.option("--create-pr", is_flag=True, help="Open a pull request instead of committing.")
@click.option("--revision", default=None, help="Branch to commit to (created if missing).")
@click.option("--allow-synthetic", is_flag=True, help="Allow publishing random-weight builds.")
@click.option(
    "--allow-recovered",
    is_flag=True,
    help="Allow publishing builds from weights recovered from an ONNX export (marked so).",
)
@click.option("--private", is_flag=True, help="Create the repo private if it does not exist.")
@_browser_report
def publish_command(repo_id, recipes, all_, out_dir, card_only, prune, **flags) -> None:
    """Publish the repo's whole family as one commit: the chosen builds, plus every variant
    already on the Hub that still matches its record (token: HF_TOKEN or login)."""

    check_repo_id(repo_id)
    common = {k: flags[k] for k in ("dry_run", "create_pr", "revision")}
    if card_only:
        if recipes or all_ or prune or flags["browser_report"]:
            raise PublishError(
                "--card-only uploads README.md alone; drop --recipe/--all/--prune/--browser-report"
            )
        _report(publish_card(repo_id, **common), flags)
        return
    folders = [] if prune and not (recipes or all_) else built_folders(out_dir, recipes, all_)
    existing = _recipe_names() if prune else None
    _report(publish(folders, repo_id, existing_recipes=existing, **flags), flags)


def _recipe_names() -> set[str]:
    return {path.stem for path in recipe_files()}


def _report(result, flags) -> None:
    for line in result.stale:
        click.echo(f"stale: {line}")
    if not result.dry_run and not result.changed:
        click.echo(f"unchanged: {result.repo_id} already holds exactly this; no commit made")
        return
    if not result.dry_run:
        click.echo(f"published: {result.pr_url or result.commit_url}")
        if result.tag:
            click.echo(f"tagged: {result.tag}")
        return
    where = f"{' as a pull request' if flags['create_pr'] else ''}"
    where += f" on {flags['revision']}" if flags["revision"] else ""
    click.echo(f"dry run: would commit to {result.repo_id}{where}: {result.message}")
    if not result.hub_read:
        click.echo("note: the repo could not be read; this plan covers this run's builds only")
    for path, size in result.files:
        click.echo(f"  {size / 2**20:10.2f} MiB  {path}")
    for path in result.deletions:
        click.echo(f"  {'delete':>10}      {path}")
    total = sum(size for _, size in result.files)
    click.echo(
        f"  {total / 2**20:10.2f} MiB  total, {len(result.files)} files "
        "(unchanged files are skipped at upload)"
    )
    if result.synthetic_blocked:
        click.echo("note: synthetic weights; a real publish needs --allow-synthetic")
    if result.recovered_blocked:
        click.echo("note: recovered weights; a real publish needs --allow-recovered")
