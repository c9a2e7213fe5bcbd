"""Click options more than one command shares, defined once."""

from __future__ import annotations

import click

from publisher.checkpoint import SPECS

checkpoint_option = click.option(
    "--checkpoint", metavar="SRC", default=None, help=f"{SPECS} (default: the recipe's)."
)

speech_gates_option = click.option(
    "--speech-gates/--no-speech-gates",
    "speech",
    default=True,
    show_default=True,
    help="Run the WER/DNSMOS speech set (real weights; minutes). Off: recorded as skipped.",
)
