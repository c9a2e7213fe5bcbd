"""How commands talk: progress lines on stderr, errors on one line.

The library reports progress through module loggers under ``publisher`` (a Python caller
sees nothing unless it configures logging); the command line shows their INFO lines on
stderr, warnings prefixed ``warning:``, so stdout stays the result.
"""

from __future__ import annotations

import logging

import click

LOGGER = "publisher"


def info(line: str) -> None:
    """A progress line of the command itself (stderr, so stdout stays the result)."""
    click.echo(line, err=True)


class _ClickHandler(logging.Handler):
    """Each record as one line through click (so a test's CliRunner captures it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = record.getMessage()
        except Exception:  # a malformed call in a library must not stop a command
            self.handleError(record)
            return
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        click.echo(f"{prefix}{line}", err=True)


def show_progress(level: int = logging.INFO) -> None:
    """Show the library's log lines on stderr (once per process, however often called).
    The handler sits on the root logger: a library that calls ``logging.basicConfig()``
    later then adds no second handler (basicConfig does nothing once the root has one),
    so no line is printed twice; other libraries' warnings come through it too."""
    logging.getLogger(LOGGER).setLevel(level)
    root = logging.getLogger()
    if not any(isinstance(h, _ClickHandler) for h in root.handlers):
        root.addHandler(_ClickHandler())


def one_line(err: BaseException) -> str:
    """The message on one line, whatever a quoted name holds (newlines shown escaped)."""
    return str(err).replace("\r", "\\r").replace("\n", "\\n")
