"""The export cache: one fp32 graph per (checkpoint hash, export settings, mode, torch
version, export format), so many recipes over one checkpoint export once. Each entry's
sha256 is recorded when written and checked when read; a damaged entry is rebuilt."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from publisher.model.checkpoint import file_sha256
from publisher.workspace import atomic_path, sweep, write_text_atomic

if TYPE_CHECKING:
    from publisher.model.checkpoint import Checkpoint
    from publisher.recipe.schema import Recipe

log = logging.getLogger(__name__)

EXPORT_FORMAT_VERSION = 2  # bump when publisher/export/dynamic.py changes its output
BUCKET_FORMAT_VERSION = 4  # bump when publisher/export/bucket/ changes its output


def export_key(ckpt: Checkpoint, recipe: Recipe, *, parity: bool, voiced: bool = False) -> str:
    import torch

    settings = {
        "checkpoint": ckpt.sha256,
        "export": recipe.export.model_dump(mode="json"),
        "parity": parity,
        **({"voiced": True} if voiced else {}),
        "torch": torch.__version__,
        "format": EXPORT_FORMAT_VERSION,
    }
    if recipe.is_bucket:
        settings["bucket_format"] = BUCKET_FORMAT_VERSION
    blob = json.dumps(settings, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def store(target: Path, write: Callable[[Path], None]) -> None:
    """Write a cache entry atomically (``write`` fills a scratch path) and record its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep(target.parent)  # a killed export's half-written file
    with atomic_path(target) as tmp:
        write(tmp)
        digest = file_sha256(tmp)
    write_text_atomic(_digest_path(target), digest + "\n")


def _digest_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def recorded_sha256(target: Path) -> str | None:
    """The sha256 recorded when the entry was written (None when there is none)."""
    try:
        return _digest_path(target).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def cached_entry_ok(target: Path, what: str = "export cache entry") -> bool:
    """Whether the cached graph is whole: its sha256, recorded when it was written,
    still matches. A damaged or unrecorded entry is named in one line and rebuilt."""
    if not target.is_file():
        return False
    recorded = recorded_sha256(target)
    try:
        if recorded and file_sha256(target) == recorded:
            return True
    except OSError:
        pass
    log.warning(
        "%s %s: no recorded sha256, or it does not match (damaged or incomplete); rebuilding it",
        what,
        target,
    )
    return False
