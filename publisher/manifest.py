"""A build's manifest.json: its name and the fields every reader relies on, checked when it
is read (one line naming the first wrong field, never a KeyError later). Shared by build,
verify, bench, stage, publish and conformance without importing the build itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

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
        ManifestCore.model_validate(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PublisherError(f"{path}: not valid JSON ({exc}); rebuild it") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "top level"
        raise PublisherError(
            f"{path}: not a build manifest ({where}: {err['msg']}); rebuild it"
        ) from None
    return data


def _model_path(v: str) -> str:
    if v.startswith("/") or ".." in v.split("/") or "\\" in v:
        raise ValueError("must be a relative path inside the build folder")
    return v


class _Checkpoint(BaseModel):
    source: str
    sha256: str


class _File(BaseModel):
    sha256: str
    bytes: int


class ManifestCore(BaseModel):
    """The fields of a build's manifest.json that stage, verify and bench read."""

    model_config = ConfigDict(extra="allow")
    recipe: str
    model: Annotated[str, AfterValidator(_model_path)]
    checkpoint: _Checkpoint
    files: dict[str, _File]
    verification: dict[str, Any]  # re-made by verify; stage reads "passed" (absent: no)
