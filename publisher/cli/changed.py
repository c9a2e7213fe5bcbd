"""``publisher changed --base REV [--head REV] [--json]``: the recipes a change affects.

Registered by publisher.cli with ``main.add_command(changed_command)``. The repository is
the git work tree holding the current directory; see publisher.changed for the rules.
"""

from __future__ import annotations

import click

from publisher.changed import affected, repo_toplevel


@click.command("changed")
@click.option(
    "--base", required=True, metavar="REV", help="Compare from here (e.g. the pushed-over SHA)."
)
@click.option("--head", default="HEAD", show_default=True, metavar="REV", help="Compare to here.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One line of JSON: recipes, cards_only, removed, matrix (GitHub Actions), any.",
)
def changed_command(base: str, head: str, as_json: bool) -> None:
    """List the recipes to rebuild for the changes on HEAD since it left BASE (base...head)."""

    plan = affected(repo_toplevel(), base, head)
    if as_json:
        click.echo(plan.json_line())
    else:
        for line in plan.lines():
            click.echo(line)
