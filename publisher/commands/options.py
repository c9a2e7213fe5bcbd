"""Click options more than one command shares, defined once."""

from __future__ import annotations

import click

checkpoint_option = click.option(
    "--checkpoint",
    metavar="SRC",
    default=None,
    help=(
        "hub:ORG/NAME, path:DIR, onnx:FILE, recovered:kokoro-v1.0 or synthetic:tiny|full "
        "(default: the recipe's)."
    ),
)
