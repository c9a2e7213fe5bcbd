"""Markdown and number formatting shared by the UI modules."""

from __future__ import annotations

import html
import re


def md_escape(text: object) -> str:
    """Text (possibly typed by a user) made inert for Markdown and HTML."""
    s = html.escape(str(text).replace("\r", " ").replace("\n", " "), quote=False)
    return re.sub(r"([\\`*_{}\[\]|#!<>~])", r"\\\1", s)


def fmt(value: float | None, digits: int = 3) -> str:
    """A figure for a table cell; "-" when there is none."""
    return "-" if value is None else f"{value:.{digits}f}"
