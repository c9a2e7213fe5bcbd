"""Files and folders that are never half-written: atomic writes, folder swaps, scratch
folders, and the checks made before heavy work.

Every temporary name carries the writer's process id (``.NAME.<pid>.<random>.partial``
for folders, ``.NAME.<pid>.tmp`` for files), so a later run can tell a leftover of a
killed run (its process is gone) from the work of a run still going, and sweep it.
The standard library does all of this well enough; what it lacks is only the naming
rule and the sweep, which is why this module exists.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from publisher.runtime.errors import InputError

log = logging.getLogger(__name__)

_LEFTOVER = re.compile(r"^\..+\.(?P<pid>\d+)\.(?:[^.]+\.partial|tmp)$")
MiB = 2**20


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(folder: Path) -> list[Path]:
    """Remove leftovers of killed runs in ``folder`` (not of runs still alive)."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _LEFTOVER.match(entry.name)
        if not m or pid_alive(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def scratch_dir(parent: Path, label: str) -> Path:
    """A new empty folder ``parent/.label.<pid>.<random>.partial`` (swept if we are killed),
    with the permissions the umask gives (mkdtemp's 0700 would follow it into place)."""
    path = Path(tempfile.mkdtemp(prefix=f".{label}.{os.getpid()}.", suffix=".partial", dir=parent))
    path.chmod(0o777 & ~_umask())
    return path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one
    rename, on any failure it is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def replace_folder(new: Path, final: Path) -> None:
    """Swap the finished folder ``new`` in at ``final``; an old one is removed only once
    the new one is in place."""
    old = None
    if final.exists() or final.is_symlink():
        if not final.is_dir() or final.is_symlink():
            raise InputError(f"{final} exists and is not a folder; remove it or pick another")
        old = final.with_name(f".{final.name}.{os.getpid()}.old.partial")
        os.replace(final, old)
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _existing_ancestor(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        if p.is_symlink():  # a dangling link: report it, do not walk past it
            break
        p = p.parent
    return p


def check_writable_folder(folder: Path, what: str, need_bytes: int = 0) -> None:
    """Fail early, in one line, when ``folder`` cannot receive about ``need_bytes``:
    a file in the way, a read-only or full filesystem. Creates nothing."""
    folder = Path(folder)
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise InputError(f"{what} {folder}: {base} is a file, not a folder; pick another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".probe.{os.getpid()}.", suffix=".tmp", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = describe_os_error(exc)
        raise InputError(f"{what} {folder}: cannot write there ({why})") from None
    free = shutil.disk_usage(base).free
    if need_bytes and free < need_bytes:
        raise InputError(
            f"{what} {folder}: only {free / MiB:.0f} MiB free, about {need_bytes / MiB:.0f} MiB "
            "needed; free some space or pick another folder"
        )


def describe_os_error(exc: OSError) -> str:
    """``exc`` as a short phrase: 'no space left on device', 'read-only file system'."""
    text = exc.strerror or (errno.errorcode.get(exc.errno or 0) if exc.errno else None)
    text = (text or type(exc).__name__).rstrip(".")
    return text[0].lower() + text[1:] if text else type(exc).__name__


def os_error_line(exc: OSError) -> str:
    """The one line the CLI prints for an OSError nobody turned into a PublisherError."""
    where = exc.filename or ""
    hint = {
        errno.ENOSPC: "; free some space and run it again",
        errno.EROFS: "; pick a writable folder",
        errno.EACCES: "; check the permissions or pick another folder",
        errno.ENOTDIR: "; a file is where a folder was expected",
    }.get(exc.errno or 0, "")
    return f"{where}: {describe_os_error(exc)}{hint}" if where else describe_os_error(exc) + hint


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- hash-recorded cache entries
def store(target: Path, write: Callable[[Path], None]) -> None:
    """Write a cache entry atomically (``write`` fills a scratch path) and record its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep(target.parent)  # a killed export's half-written file
    with atomic_path(target) as tmp:
        write(tmp)
        digest = file_sha256(tmp)
    write_text_atomic(_digest_path(target), digest + "\n")


def store_if_possible(target: Path, write: Callable[[Path], None], what: str) -> None:
    """``store``, where the cache only saves time: a full or read-only cache costs the
    caller nothing but one warning line."""
    try:
        store(target, write)
    except OSError as err:
        log.warning("%s: not kept in the cache (%s): %s", what, target.parent, err.strerror or err)


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
