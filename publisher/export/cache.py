"""The export cache: one fp32 graph per (checkpoint hash, export settings, mode, torch
version, export format), so many recipes over one checkpoint export once. Each entry's
sha256 is recorded when written and checked when read (``workspace.store`` and
``workspace.cached_entry_ok``, shared with the other caches); a damaged entry is rebuilt."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from publisher.model.checkpoint import Checkpoint
    from publisher.recipe.schema import Recipe

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
