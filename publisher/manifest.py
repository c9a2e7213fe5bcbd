"""A build's manifest.json: its name and its reader, which checks it against the typed
``BuildManifest`` (one line naming the first wrong field, never a KeyError later). Shared
by build, verify, bench, stage, publish and conformance without importing the build.

One rule for the files: every file of a build folder has its sha256 recorded in the
manifest when it is written (``file_index``), and every command that uses a build reads it
with ``read_build``, which refuses a missing or changed file in one line naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from publisher import workspace
from publisher.runtime.artifacts import BuildManifest, first_error
from publisher.runtime.errors import BuildError, ChangedFileError, InputError

# the files of a build folder besides its model (and sherpa-onnx bundle)
MANIFEST = "manifest.json"  # what was built, how, and every other file's sha256
RESOLVED_RECIPE = "recipe.json"  # the recipe after `extends`
REPORT = "verify.md"  # verification report
PICTURE = "verify_spectrogram.png"  # its spectrogram picture
REPORT_FILES = (REPORT, PICTURE)  # what `publisher verify` rewrites
# what staging needs from the checkpoint, so stage and publish never open one (nor torch)
CHECKPOINT_CONFIG = "checkpoint/config.json"  # the checkpoint's config: vocab, sizes
CHECKPOINT_VOICES = "checkpoint/voices.npz"  # its voice packs, one array per voice
_HASHED: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime, inode) -> sha256


def read_manifest(folder: Path) -> BuildManifest:
    """A build's manifest.json as a ``BuildManifest`` (one line naming the first wrong
    field, never a KeyError later)."""
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(
            f"{folder}: no {MANIFEST}; build it first with `publisher build --recipe {folder.name}`"
        )
    try:
        return BuildManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); rebuild it") from None
    except ValidationError as exc:
        why = first_error(exc)
        raise InputError(f"{path}: not a build manifest ({why}); rebuild it") from None


def new_manifest(data: dict[str, Any]) -> BuildManifest:
    """A manifest about to be written, checked against ``BuildManifest``: a field of the
    wrong type is a BuildError naming it (the writer's bug, not the user's)."""
    try:
        return BuildManifest.model_validate(data)
    except ValidationError as exc:
        raise BuildError(f"{MANIFEST} not written: {first_error(exc)}") from None


def write_manifest_file(folder: Path, manifest: BuildManifest) -> None:
    """``manifest`` as ``folder``'s manifest.json: the fields it was read or made with
    and those set since, no defaults added (python mode: an infinite SNR stays one)."""
    workspace.write_json_atomic(folder / MANIFEST, manifest.model_dump(exclude_unset=True))


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime, inode) within this process:
    commands read a build several times, and a real model is hundreds of MiB."""
    st = path.stat()
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _HASHED:
        _HASHED[key] = workspace.file_sha256(path)
    return _HASHED[key]


def file_index(folder: Path, skip: str = MANIFEST) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file in a folder but ``skip`` (the file holding the index)."""
    return {
        rel: {"sha256": file_sha256(f), "bytes": f.stat().st_size}
        for f in sorted(folder.rglob("*"))
        if f.is_file() and (rel := f.relative_to(folder).as_posix()) != skip
    }


def check_files(folder: Path, files: dict[str, dict[str, Any]], rebuild: str) -> None:
    """Every recorded file is there with the bytes recorded; else one line naming the first
    that is not, and ``rebuild`` (what to run)."""
    for rel, record in sorted(files.items()):
        path = folder / rel
        if not path.is_file():
            raise ChangedFileError(f"{path}: missing since it was recorded; {rebuild}")
        got = file_sha256(path)
        if got != record["sha256"]:
            raise ChangedFileError(
                f"{path}: changed since it was recorded (sha256 {got[:12]}, recorded "
                f"{record['sha256'][:12]}); {rebuild}"
            )


def read_build(folder: Path) -> BuildManifest:
    """``read_manifest``, then every file the manifest records checked against its sha256:
    what verify, bench, stage, publish and conformance read a build with."""
    m = read_manifest(folder)
    files = {rel: record.model_dump() for rel, record in m.files.items()}
    check_files(folder, files, f"rebuild it with `publisher build --recipe {m.recipe}`")
    if m.model not in m.files:
        raise ChangedFileError(f"{folder / MANIFEST}: records no sha256 for {m.model}; rebuild it")
    return m


def write_checkpoint_files(folder: Path, config: dict[str, Any], voices: dict[str, Any]) -> None:
    """The checkpoint's config and voices into a build folder (before its file index)."""
    import numpy as np

    (folder / CHECKPOINT_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    workspace.write_json_atomic(folder / CHECKPOINT_CONFIG, config)
    with workspace.atomic_path(folder / CHECKPOINT_VOICES) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{name: voices[name] for name in sorted(voices)})


def read_checkpoint_files(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, voices) a build recorded; call ``read_build`` first (it checks them)."""
    import numpy as np

    if not (folder / CHECKPOINT_CONFIG).is_file() or not (folder / CHECKPOINT_VOICES).is_file():
        raise InputError(
            f"{folder}: built before build folders carried the checkpoint's config and voices; "
            f"rebuild it (publisher build --recipe {folder.name})"
        )
    config = json.loads((folder / CHECKPOINT_CONFIG).read_text(encoding="utf-8"))
    with np.load(folder / CHECKPOINT_VOICES) as npz:
        voices = {name: npz[name] for name in npz.files}
    return config, voices
