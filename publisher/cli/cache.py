"""``publisher cache info|verify|clear``: the caches (``publisher.cache``), in the style of
huggingface_hub's cache commands."""

from __future__ import annotations

import time

import click

from publisher.cache import AREAS, clear, entries, human_bytes, parse_age, verify
from publisher.cli.output import info
from publisher.locations import cache_root

_AREA = click.option(
    "--area",
    "areas",
    multiple=True,
    type=click.Choice(list(AREAS)),
    help="Only this area (repeatable; default: all).",
)


def _areas(areas: tuple[str, ...]) -> tuple[str, ...]:
    return areas or AREAS


@click.group("cache")
def cache_group() -> None:
    """Inspect, check and clear the caches (exports, recovered weights, runtime envs)."""


@cache_group.command("info")
@_AREA
def info_command(areas: tuple[str, ...]) -> None:
    """Every cache entry: area, size, last change, path."""

    found = entries(_areas(areas))
    click.echo(f"cache: {cache_root()}")
    click.echo(f"{'area':<12} {'size':>10}  {'changed':<16}  path")
    for e in found:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.modified))
        click.echo(f"{e.area:<12} {human_bytes(e.bytes):>10}  {when:<16}  {e.path}")
    total = human_bytes(sum(e.bytes for e in found))
    click.echo(f"{len(found)} entries, {total}")


@cache_group.command("verify")
@_AREA
@click.option(
    "--keep-damaged",
    is_flag=True,
    help="Only report damaged entries (default: remove them; each is rebuilt on next use).",
)
def verify_command(areas: tuple[str, ...], keep_damaged: bool) -> None:
    """Check every entry against the hashes recorded when it was written; exit 1 if any
    was damaged."""

    info("checking the cache entries (hashing every file) ...")
    checked, damaged = verify(_areas(areas), remove=not keep_damaged)
    for d in damaged:
        done = "kept" if keep_damaged else "removed; rebuilt on next use"
        click.echo(f"damaged: {d.entry.path}: {d.why} ({done})")
    click.echo(f"{checked} entries checked, {len(damaged)} damaged")
    if damaged:
        raise SystemExit(1)


@cache_group.command("clear")
@_AREA
@click.option(
    "--older-than",
    default=None,
    metavar="AGE",
    help="Only entries unchanged for longer than AGE (30m, 12h, 7d, 2w).",
)
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
def clear_command(areas: tuple[str, ...], older_than: str | None, dry_run: bool) -> None:
    """Remove cache entries (each is rebuilt from its source when next needed)."""

    age = parse_age(older_than) if older_than is not None else None
    removed = clear(_areas(areas), older_than=age, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for e in removed:
        click.echo(f"{verb}: {e.path} ({human_bytes(e.bytes)})")
    click.echo(f"{verb} {len(removed)} entries, {human_bytes(sum(e.bytes for e in removed))}")
