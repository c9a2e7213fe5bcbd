"""``publisher cache``: what the caches hold, whether each entry is whole, and clearing.

Every cache entry is a folder with one owner that knows how to check it:

* ``exports/<key>/``: fp32 exports (model.onnx and its recorded sha256);
* ``passes/<key>-shipped/``, ``passes/<key>-twin/``: a recipe's own passes over the
  shipped export and its twin (``passes/stored.py``; same record, and the passes' notes);
* ``sensitivity/<key>/``: the graphs sensitivity ranks (same record);
* ``lexicons/<accent>-<key>/``: sherpa-onnx bundle lexicons built from misaki's
  dictionaries (``hub/sherpa.py``; the text and its recorded sha256);
* ``synthetic/<size>-<key>/``: a seeded synthetic checkpoint (``model/synthetic.py``; its
  weights, config and voices in one file and its recorded sha256);
* ``references/<key>/``: upstream torch's side of verification (``verify/store.py``; its
  arrays and their recorded sha256);
* ``recovered/<name>/``: a named real-weights source (the assembled file against its
  pinned sha256, the voices against their known sha256);
* ``recovered/onnx/<sha>-v<N>/``: a recovered state dict (against the state hash recorded
  when it was written);
* the runtime environments of the conformance matrix (``PUBLISHER_ENVS``): whole when the
  marker their creation wrote at the end is there.

Each is rebuilt on next use when it is missing or damaged, so clearing never loses work
that cannot be redone; it only costs the time to redo it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from publisher.conformance.envs import MARK, envs_root
from publisher.locations import cache_root
from publisher.model import recovered
from publisher.runtime.errors import InputError
from publisher.workspace import file_sha256, recorded_sha256

AREAS = (
    "exports",
    "passes",
    "sensitivity",
    "lexicons",
    "references",
    "synthetic",
    "recovered",
    "envs",
)
_RECORDED = {
    "exports": "model.onnx",
    "passes": "model.onnx",
    "sensitivity": "model.onnx",
    "lexicons": "lexicon.txt",
    "references": "entry.npz",
    "synthetic": "checkpoint.pt",
}


@dataclass(frozen=True)
class Entry:
    area: str
    path: Path
    bytes: int
    modified: float  # newest file's mtime (seconds since the epoch)

    @property
    def name(self) -> str:
        return self.path.name


def _size_and_mtime(folder: Path) -> tuple[int, float]:
    files = [f for f in folder.rglob("*") if f.is_file() and not f.is_symlink()]
    stats = [f.stat() for f in files]
    newest = max((s.st_mtime for s in stats), default=folder.stat().st_mtime)
    return sum(s.st_size for s in stats), newest


def _folders(root: Path) -> list[Path]:
    """Entry folders under ``root`` (hidden ones are a running writer's scratch)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _envs_root() -> Path:
    return envs_root()


def entries(areas: tuple[str, ...] = AREAS) -> list[Entry]:
    """Every entry of the chosen areas."""
    root = cache_root()
    found: list[tuple[str, Path]] = []
    for area in areas:
        if area == "recovered":
            sources = [p for p in _folders(root / "recovered") if p.name != "onnx"]
            found += [(area, p) for p in sources + _folders(root / "recovered" / "onnx")]
        elif area == "envs":
            found += [(area, p) for p in _folders(_envs_root())]
        else:
            found += [(area, p) for p in _folders(root / area)]
    return [Entry(area, path, *_size_and_mtime(path)) for area, path in found]


# ------------------------------------------------------------------ checks
def _check_recorded(entry: Entry) -> str:
    """An entry of one file whose sha256 was recorded beside it when written."""

    model = entry.path / _RECORDED[entry.area]
    if not model.is_file():
        return f"no {model.name}"
    recorded = recorded_sha256(model)
    if not recorded:
        return "no recorded sha256"
    got = file_sha256(model)
    return "" if got == recorded else f"sha256 {got[:12]}, recorded {recorded[:12]}"


def _check_recovered(entry: Entry) -> str:
    if entry.path.parent.name == "onnx":
        return recovered.load_cached_state(entry.path)[1]
    source = recovered.SOURCES.get(entry.name)
    if source is None:
        return "not a known recovered source"
    return recovered.check_source_folder(source, entry.path)


def _check_env(entry: Entry) -> str:
    try:
        json.loads((entry.path / MARK).read_text())
    except (OSError, ValueError):
        return f"no {MARK}: its creation did not finish"
    return ""


CHECKS: dict[str, Callable[[Entry], str]] = {
    "exports": _check_recorded,
    "passes": _check_recorded,
    "sensitivity": _check_recorded,
    "lexicons": _check_recorded,
    "references": _check_recorded,
    "synthetic": _check_recorded,
    "recovered": _check_recovered,
    "envs": _check_env,
}


def check(entry: Entry) -> str:
    """Why the entry is damaged, or "" when it is whole."""
    return CHECKS[entry.area](entry)


@dataclass(frozen=True)
class Damaged:
    entry: Entry
    why: str


def verify(areas: tuple[str, ...] = AREAS, *, remove: bool = True) -> tuple[int, list[Damaged]]:
    """(entries checked, the damaged ones); ``remove``: delete them (each is rebuilt from
    its source on next use)."""
    found = entries(areas)
    damaged = [Damaged(e, why) for e in found if (why := check(e))]
    if remove:
        for d in damaged:
            shutil.rmtree(d.entry.path, ignore_errors=True)
    return len(found), damaged


def clear(
    areas: tuple[str, ...] = AREAS, *, older_than: float | None = None, dry_run: bool = False
) -> list[Entry]:
    """Remove the entries of ``areas`` (only those unchanged for ``older_than`` seconds,
    when given); returns what was (or, with ``dry_run``, would be) removed."""
    now = time.time()
    chosen = [e for e in entries(areas) if older_than is None or now - e.modified > older_than]
    if not dry_run:
        for e in chosen:
            shutil.rmtree(e.path, ignore_errors=True)
    return chosen


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``30m``, ``12h``, ``7d``, ``2w`` (or plain seconds) -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise InputError(
            f"--older-than {text!r}: expected a number and a unit, like 30m, 12h, 7d or 2w"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
