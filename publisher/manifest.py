"""A build's manifest.json: its name and its reader, which checks it against the typed
``BuildManifest`` (one line naming the first wrong field, never a KeyError later). Shared
by build, verify, bench, stage, publish and conformance without importing the build."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from publisher.runtime.artifacts import BuildManifest, first_error
from publisher.runtime.errors import PublisherError

MANIFEST = "manifest.json"


def read_manifest(folder: Path) -> dict[str, Any]:
    """A build's manifest.json, checked for the fields the commands read (one line
    naming the first wrong field, never a KeyError later)."""
    path = folder / MANIFEST
    if not path.is_file():
        raise PublisherError(
            f"{folder}: no {MANIFEST}; build it first with `publisher build --recipe {folder.name}`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        BuildManifest.model_validate(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PublisherError(f"{path}: not valid JSON ({exc}); rebuild it") from None
    except ValidationError as exc:
        why = first_error(exc)
        raise PublisherError(f"{path}: not a build manifest ({why}); rebuild it") from None
    return data
