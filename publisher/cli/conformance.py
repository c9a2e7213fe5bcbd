"""``publisher conformance``: the runtime matrix of built variants (publisher.conformance)."""

from __future__ import annotations

from pathlib import Path

import click

from publisher.cli.options import out_option, recipes_option
from publisher.cli.publish import built_folders
from publisher.conformance.matrix import failures, run_matrix
from publisher.runtime.errors import RunError
from publisher.runtime.runtimes import runtime_names


@click.command("conformance")
@recipes_option("A built variant OUT/NAME (repeatable).")
@click.option("--all", "all_", is_flag=True, help="Every built variant in OUT.")
@out_option("Folder holding the built variants.")
def conformance_command(recipes, all_, out_dir: Path) -> None:
    """Load and run each built file in every runtime it claims, each in its own cached
    environment; record the matrix in its manifest; exit 1 if a claimed cell fails."""

    run_and_report(built_folders(out_dir, recipes, all_))


def run_and_report(folders: list[Path]) -> None:
    """The matrix of each build as a table on stdout; one error line per failed cell on
    stderr and a PublisherError (exit 1) when any claimed cell failed."""

    names = runtime_names()
    click.echo("| variant | " + " | ".join(names) + " |")
    click.echo("|---" * (len(names) + 1) + "|")
    failed: list[str] = []
    for folder in folders:
        result = run_matrix(folder)
        cells = [result["cells"].get(n, {}).get("status", "-") for n in names]
        click.echo(f"| {folder.name} | " + " | ".join(cells) + " |")
        failed += failures(folder.name, result)
    for line in failed:
        click.echo(f"fails: {line}", err=True)
    if failed:
        raise RunError(f"{len(failed)} claimed runtime cell(s) failed (listed above)")
