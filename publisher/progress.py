"""Progress bars for long steps (items done, time left), quiet when stderr is not a
terminal: logs and CI keep the one line per item the steps already write.

tqdm, as huggingface_hub uses; ``PUBLISHER_PROGRESS=0`` turns the bars off, ``=1`` on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def shown() -> bool:
    forced = os.environ.get("PUBLISHER_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """``items``, with a bar on stderr when a person is watching."""
    if not shown():
        yield from items
        return
    from tqdm.auto import tqdm

    with tqdm(items, desc=desc, total=total, unit="item", leave=False, file=sys.stderr) as bar:
        yield from bar
