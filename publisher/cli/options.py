"""Click options more than one command shares, defined once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from publisher.model.sources import SPECS

Decorator = Callable[[Any], Any]


def checkpoint_option_with(help_text: str) -> Decorator:
    """``--checkpoint SRC`` (default None) with a command's own help."""
    return click.option("--checkpoint", metavar="SRC", default=None, help=help_text)


checkpoint_option = checkpoint_option_with(f"{SPECS} (default: the recipe's).")


def recipe_option(help_text: str) -> Decorator:
    """``--recipe NAME|PATH`` (required, one recipe) as ``recipe_name``."""
    return click.option(
        "--recipe", "recipe_name", required=True, metavar="NAME|PATH", help=help_text
    )


def recipes_option(help_text: str) -> Decorator:
    """``--recipe NAME`` (repeatable) as ``recipes``: built variants OUT/NAME."""
    return click.option("--recipe", "recipes", multiple=True, metavar="NAME", help=help_text)


def out_option(help_text: str, *, required: bool = False) -> Decorator:
    """``--out DIRECTORY`` as ``out_dir`` (default ``dist`` unless required)."""
    return click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False, path_type=Path),
        required=required,
        default=None if required else Path("dist"),
        show_default=not required,
        help=help_text,
    )


speech_gates_option = click.option(
    "--speech-gates/--no-speech-gates",
    "speech",
    default=True,
    show_default=True,
    help="Run the WER/DNSMOS speech set (real weights; minutes). Off: recorded as skipped.",
)
