"""``publisher list`` and ``publisher validate``: the recipes, each checked the way a build
loads it (schema, extends, and every listed pass's own check)."""

from __future__ import annotations

import click

from publisher.cli.output import one_line
from publisher.recipe.loader import list_recipes, load_recipe, recipe_files
from publisher.runtime.errors import RecipeError


@click.command("list")
def list_command() -> None:
    """Show every recipe with its one-line description."""

    recipes = list_recipes()
    width = max((len(r.name) for r in recipes), default=0)
    for r in recipes:
        click.echo(f"{r.name:<{width}}  {r.output.path:<34}  {r.description}")


@click.command("validate")
@click.argument("recipes", nargs=-1)
def validate_command(recipes: tuple[str, ...]) -> None:
    """Check recipes (names or paths; all of recipes/ when none given)."""

    if not recipes:  # every file, each reported, the broken ones included
        recipes = tuple(str(path) for path in recipe_files())
    failed = 0
    for name in recipes:
        try:
            r = load_recipe(name)
            click.echo(f"ok  {r.name}")
        except RecipeError as err:
            failed += 1
            click.echo(f"error: {one_line(err)}", err=True)
    if failed:
        raise click.exceptions.Exit(1)
