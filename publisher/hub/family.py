"""The repo as a family: this run's variants merged with what the Hub's manifest recorded.

A publish describes every variant in the repo, not only the ones it built: a variant it did
not rebuild is carried over when its file on the Hub still has the sha256 the manifest
recorded (and was built from the same checkpoint); otherwise it is listed as stale with the
reason. ``--prune`` deletes the files of variants whose recipe no longer exists. Pure data
in, data out: reading the Hub is ``publisher.hub.publish``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Repo manifests this publisher writes; entries of older ones lack what a card needs
# (tensors, host), so their variants are listed as stale until rebuilt.
MANIFEST_FORMAT = 2


@dataclass(frozen=True)
class RemoteFile:
    size: int
    sha256: str | None  # LFS files only; the Hub records a git blob id for the others


@dataclass
class RemoteState:
    """What a publish read from the repo: the head commit (None: no repo yet), its
    manifest.json (None: none there) and every file with its sha256 where known."""

    head: str | None = None
    manifest: dict[str, Any] | None = None
    files: dict[str, RemoteFile] = field(default_factory=dict)


@dataclass
class Family:
    variants: list[dict[str, Any]]  # current: built in this run, or carried over unchanged
    stale: list[dict[str, Any]]  # in the repo, but no longer what was recorded (with why)
    deletions: list[str]  # repo paths this commit deletes
    notes: list[str]  # one line per decision, for the user


def recorded_entries(manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Variants and stale entries of a repo manifest, each with the checkpoint it was built
    from (older manifests recorded it once, at the top)."""
    if not manifest:
        return []
    top = (manifest.get("checkpoint") or {}).get("sha256")
    fmt = manifest.get("format", 1)
    out = []
    for entry in [*manifest.get("variants", []), *manifest.get("stale", [])]:
        entry = {k: val for k, val in entry.items() if k != "stale_reason"}
        entry.setdefault("checkpoint_sha256", top)
        entry["_format"] = fmt
        out.append(entry)
    return out


def merge(
    built: list[dict[str, Any]],
    remote: RemoteState,
    checkpoint_sha256: str,
    existing_recipes: set[str] | None = None,
) -> Family:
    """``built`` entries plus the Hub's recorded ones (see module doc); ``existing_recipes``
    given: recorded variants whose recipe is not in it are pruned (files deleted)."""
    by_recipe = {v["recipe"] for v in built}
    built_paths = {v["path"] for v in built}
    variants, stale, deletions, notes = list(built), [], [], []
    for entry in recorded_entries(remote.manifest):
        name, path = entry["recipe"], entry["path"]
        owned = [path, entry.get("spectrogram"), *entry.get("extra_files", [])]
        own_files = sorted({p for p in owned if p and p in remote.files})
        if name in by_recipe:
            if path not in built_paths and path in remote.files:
                deletions.append(path)
                notes.append(f"{name}: now writes another file; deleting its old {path}")
            continue
        if path in built_paths:
            notes.append(f"{name}: its file {path} is replaced by this run's build")
            continue
        if existing_recipes is not None and name not in existing_recipes:
            deletions += own_files
            notes.append(f"pruned {name}: its recipe no longer exists; deleting {path}")
            continue
        reason = stale_reason(entry, remote.files.get(path), checkpoint_sha256)
        entry = {k: val for k, val in entry.items() if k != "_format"}
        if reason == "missing":
            notes.append(f"{name}: {path} is no longer in the repo; dropped from the card")
        elif reason:
            stale.append({**entry, "stale_reason": reason})  # the caller reports these
        else:
            variants.append(entry)
            notes.append(f"kept {name} ({path}): unchanged on the Hub")
    key = _order
    return Family(sorted(variants, key=key), sorted(stale, key=key), sorted(set(deletions)), notes)


def _order(entry: dict[str, Any]) -> str:
    return entry["recipe"]


def stale_reason(entry: dict[str, Any], file: RemoteFile | None, checkpoint_sha256: str) -> str:
    """Why a recorded variant no longer describes its file ("" when it still does;
    "missing" when the file is gone)."""
    if file is None:
        return "missing"
    if file.sha256 is None:
        return "not stored as an LFS file, so its sha256 cannot be checked; rebuild it"
    if file.sha256 != entry["sha256"]:
        return (
            f"the file on the Hub (sha256 {file.sha256[:12]}) is not the one publisher "
            f"recorded ({entry['sha256'][:12]}); rebuild it or restore the file"
        )
    if entry.get("checkpoint_sha256") != checkpoint_sha256:
        built_from = str(entry.get("checkpoint_sha256"))[:12]
        return f"built from another checkpoint ({built_from}); rebuild it"
    if entry.get("_format", 1) < MANIFEST_FORMAT:
        return "recorded by an older publisher (no tensor or host record); rebuild it"
    return ""
