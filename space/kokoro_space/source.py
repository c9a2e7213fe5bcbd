"""Where the Space's files come from: a Hub model repo or a local staged folder.

``KOKORO_DIR``  a local staged repo folder (what ``publisher stage`` writes);
``KOKORO_REPO`` a Hub model repo id, optionally ``@revision``; files are fetched with
                ``hf_hub_download`` when first needed and cached by huggingface_hub.
Neither set: ``space_config.json`` beside ``app.py`` (``publisher space`` writes it with the
model repo it was given). A Space variable ``KOKORO_REPO`` overrides that file.

Only two kinds of names are ever fetched: the fixed files below, and the ``path`` of a
variant listed in ``manifest.json`` (checked by ``safe_relpath``). Names typed by a user are
matched against the manifest and never joined into a path.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

MANIFEST = "manifest.json"
CONFIG = "config.json"
VOICES_NPZ = "voices.npz"
VOICES_TXT = "voices.txt"
FIXED_FILES = (MANIFEST, CONFIG, VOICES_NPZ, VOICES_TXT)
SPACE_CONFIG = "space_config.json"
APP_DIR = Path(__file__).resolve().parent.parent

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


class SourceError(Exception):
    """The model files cannot be read; ``str(err)`` is one line for the UI."""


def parse_repo_spec(spec: str) -> tuple[str, str | None]:
    """``ORG/NAME[@REVISION]`` -> (repo id, revision or None); SourceError when malformed."""
    spec = (spec or "").strip()
    repo_id, _, revision = spec.partition("@")
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise SourceError(f"KOKORO_REPO {spec!r}: expected ORG/NAME or ORG/NAME@REVISION")
    if revision and (not _REVISION.match(revision) or ".." in revision):
        raise SourceError(f"KOKORO_REPO {spec!r}: {revision!r} is not a valid revision")
    return repo_id, revision or None


def safe_relpath(path: object) -> str | None:
    """``path`` if it is a plain relative POSIX path inside a repo (no ``..``), else None."""
    if not isinstance(path, str) or not path or len(path) > 300 or "\\" in path:
        return None
    parts = PurePosixPath(path).parts
    if path.startswith("/") or not parts:
        return None
    if any(p in (".", "..") or not _SEGMENT.match(p) for p in parts):
        return None
    return "/".join(parts)


class ModelSource:
    """A read-only set of repo files, fetched by relative path and cached."""

    label: str = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, Path] = {}

    def fetch(self, relpath: str) -> Path:
        """A local path to ``relpath`` (a fixed file or a manifest variant path)."""
        clean = safe_relpath(relpath)
        if clean is None:
            raise SourceError(f"{self.label}: refusing to read {relpath!r}")
        with self._lock:
            cached = self._paths.get(clean)
        if cached is not None and cached.is_file():
            return cached
        path = self._fetch(clean)
        with self._lock:
            self._paths[clean] = path
        return path

    def read_json(self, relpath: str) -> dict:
        path = self.fetch(relpath)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SourceError(f"{self.label}: {relpath} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise SourceError(f"{self.label}: {relpath} is not a JSON object")
        return data

    def _fetch(self, relpath: str) -> Path:  # pragma: no cover - abstract
        raise NotImplementedError


class LocalSource(ModelSource):
    """A staged folder on disk (``KOKORO_DIR``)."""

    def __init__(self, root: str | Path) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        self.label = f"folder {self.root}"

    def _fetch(self, relpath: str) -> Path:
        root = self.root.resolve()
        if not root.is_dir():
            raise SourceError(f"KOKORO_DIR {self.root}: no such folder")
        path = (root / relpath).resolve()
        if not path.is_relative_to(root):  # a symlink pointing out of the folder
            raise SourceError(f"{self.label}: {relpath} points outside the folder")
        if not path.is_file():
            raise SourceError(f"{self.label}: {relpath} is missing")
        return path


class HubSource(ModelSource):
    """A Hub model repo (``KOKORO_REPO``), downloaded file by file into the HF cache."""

    def __init__(self, repo_id: str, revision: str | None = None) -> None:
        super().__init__()
        self.repo_id = repo_id
        self.revision = revision
        self.label = f"{repo_id}@{revision}" if revision else repo_id

    def _fetch(self, relpath: str) -> Path:
        from huggingface_hub import hf_hub_download

        from publisher.runtime.hub_errors import download_error

        try:
            return Path(hf_hub_download(self.repo_id, relpath, revision=self.revision))
        except Exception as exc:  # HTTP, connection and cache errors alike: one line
            raise SourceError(download_error(self.label, relpath, exc)) from None


def source_from_env(
    environ: Mapping[str, str] | None = None, config_dir: Path = APP_DIR
) -> ModelSource:
    """The source named by KOKORO_DIR, else KOKORO_REPO, else space_config.json."""
    env = os.environ if environ is None else environ
    if env.get("KOKORO_DIR", "").strip():
        return LocalSource(env["KOKORO_DIR"].strip())
    spec = env.get("KOKORO_REPO", "").strip()
    if not spec:
        config = Path(config_dir) / SPACE_CONFIG
        if config.is_file():
            try:
                spec = str(json.loads(config.read_text(encoding="utf-8")).get("KOKORO_REPO", ""))
            except (OSError, ValueError, AttributeError) as exc:
                raise SourceError(f"{SPACE_CONFIG}: cannot read it ({exc})") from None
    if not spec.strip():
        raise SourceError(
            "no model source: set KOKORO_REPO (a Hub model repo, ORG/NAME[@REVISION]) "
            "or KOKORO_DIR (a local staged folder)"
        )
    return HubSource(*parse_repo_spec(spec))
