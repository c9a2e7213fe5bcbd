"""How commands talk: progress lines on stderr, errors on one line."""

from __future__ import annotations

import click


def info(line: str) -> None:
    """A progress line (stderr, so stdout stays the result)."""
    click.echo(line, err=True)


def one_line(err: BaseException) -> str:
    """The message on one line, whatever a quoted name holds (newlines shown escaped)."""
    return str(err).replace("\r", "\\r").replace("\n", "\\n")
